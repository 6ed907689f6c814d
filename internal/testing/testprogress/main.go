// Command testprogress is what `make test` runs: go test -json with the
// arguments it is given, printed as go test prints without -json, one
// package at a time as each finishes, and then two closing lines:
//
//	test groups: unit 240 ran; multi-process 95 ran; multi-host/SSH 0 ran, 12 skipped (needs root (network namespaces)); examples 70 ran
//	412 passed, 0 failed
//
// A failed test's output (its t.Log lines, a race report, a panic) is
// printed as go test prints it, without the "=== RUN" framing of -json,
// and a failed package's own output with it. A test's group is the
// internal/testing/testbin attribute it sets (multi-process, multi-host); a test
// with none is a unit test, an Example an example. The groups line says
// for each group how many tests ran and how many were skipped, with the
// reasons the tests gave (-short, no root, no sshd...).
//
// It exits with go test's status, or 1 if a test failed while go test
// exited 0. It runs $GO (default go).
//
//	go run ./internal/testing/testprogress -race -timeout=60m ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
)

func main() {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, append([]string{"test", "-json"}, os.Args[1:]...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testprogress:", err)
		os.Exit(1)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testprogress:", err)
		os.Exit(1)
	}
	r := newReport(os.Stdout)
	r.read(stdout)
	err = cmd.Wait()
	r.close()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		fmt.Fprintln(os.Stderr, "testprogress:", err)
		code = 1
	}
	if code <= 0 && r.failed > 0 {
		code = 1
	}
	os.Exit(code)
}

// event is one line of go test -json (cmd/test2json's TestEvent).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output events
	Test       string
	Output     string
	Key, Value string // attr events
}

// The groups, in the order the closing line names them.
const (
	groupUnit         = "unit"
	groupMultiProcess = "multi-process" // = testbin.GroupMultiProcess
	groupMultiHost    = "multi-host"    // = testbin.GroupMultiHost
	groupExample      = "examples"
)

var groupOrder = []string{groupUnit, groupMultiProcess, groupMultiHost, groupExample}

// groupLabel is how the closing line names a group.
var groupLabel = map[string]string{groupMultiHost: "multi-host/SSH"}

// groupRank orders groups for a test in more than one (a multi-host test
// also runs processes): the test counts in the highest.
var groupRank = map[string]int{groupMultiProcess: 1, groupMultiHost: 2}

// groupCount is what happened to the tests of one group.
type groupCount struct {
	ran, skipped int
	reasons      map[string]int // skip reason -> tests
}

// test is one test or subtest of a package.
type test struct {
	name   string
	group  string   // from its attr event, if any
	out    []string // its output, until it ends
	result string   // pass, fail, skip; "" while it runs
}

// pkg is one package's tests while it runs.
type pkg struct {
	out   []string // the package's own output (not a test's)
	tests map[string]*test
	order []string // test names, as they started
}

// report turns go test -json events into go test's usual output.
type report struct {
	w                       io.Writer
	pkgs                    map[string]*pkg
	groups                  map[string]*groupCount
	order                   []string // groups, in the order the closing line names them
	passed, failed, skipped int
}

func newReport(w io.Writer) *report {
	r := &report{w: w, pkgs: map[string]*pkg{}, groups: map[string]*groupCount{}, order: slices.Clone(groupOrder)}
	for _, g := range groupOrder {
		r.groups[g] = &groupCount{reasons: map[string]int{}}
	}
	return r
}

// read handles every line of in: JSON events, and any other line (go
// test's own complaints) printed as it is.
func (r *report) read(in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(r.w, "%s\n", line)
			continue
		}
		r.handle(e)
	}
}

func (r *report) pkg(name string) *pkg {
	p := r.pkgs[name]
	if p == nil {
		p = &pkg{tests: map[string]*test{}}
		r.pkgs[name] = p
	}
	return p
}

func (r *report) handle(e event) {
	if e.Action == "build-output" {
		io.WriteString(r.w, e.Output) // compiler errors, as go build prints them
		return
	}
	if e.Action == "build-fail" {
		return // the package's fail event follows
	}
	p := r.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			p.out = append(p.out, e.Output)
		case "pass", "skip":
			r.endPackage(e.Package, p, false)
		case "fail":
			r.endPackage(e.Package, p, true)
		}
		return
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &test{name: e.Test}
		p.tests[e.Test] = t
		p.order = append(p.order, e.Test)
	}
	switch e.Action {
	case "output":
		t.out = append(t.out, e.Output)
	case "attr":
		if e.Key == "group" && groupRank[e.Value] > groupRank[t.group] {
			t.group = e.Value
		}
	case "pass", "skip":
		t.result = e.Action
	case "fail":
		t.result = "fail"
		r.printTest(t)
	}
}

// printTest prints a failed test's output as go test does without -json.
func (r *report) printTest(t *test) {
	for _, l := range t.out {
		if !framing(l) {
			io.WriteString(r.w, l)
		}
	}
	t.out = nil
}

// framing says whether l is a line go test -json adds (-test.v's) that
// go test without -v does not print.
func framing(l string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "=== ATTR", "--- PASS", "--- SKIP"} {
		if strings.HasPrefix(strings.TrimLeft(l, " "), p) {
			return true
		}
	}
	return false
}

// endPackage prints the package's line (go test's ok, FAIL or "no test
// files"), after its own output and that of any test still running (one
// that panicked or timed out) if it failed, and counts its tests.
func (r *report) endPackage(name string, p *pkg, failed bool) {
	delete(r.pkgs, name)
	var summary []string
	for _, l := range p.out {
		switch {
		case strings.HasPrefix(l, "ok  \t"), strings.HasPrefix(l, "FAIL\t"), strings.HasPrefix(l, "?   \t"):
			summary = append(summary, l)
		case failed && l != "PASS\n":
			io.WriteString(r.w, l)
		}
	}
	// Tests that never ended: the package died under them.
	for _, n := range p.order {
		if t := p.tests[n]; t.result == "" {
			if failed {
				r.printTest(t)
				fmt.Fprintf(r.w, "--- FAIL: %s (did not finish: the test process ended under it)\n", t.name)
			}
			t.result = "fail"
		}
	}
	if len(summary) == 0 {
		status := "ok  "
		if failed {
			status = "FAIL"
		}
		summary = append(summary, fmt.Sprintf("%s\t%s\n", status, name))
	}
	for _, l := range summary {
		io.WriteString(r.w, l)
	}
	r.count(p, failed)
}

// count adds p's tests to the totals and the groups: a test with a group
// counts in it; a top-level test with no group in itself or any subtest
// is a unit test (or an example).
func (r *report) count(p *pkg, pkgFailed bool) {
	grouped := map[string]bool{} // top-level tests with a group somewhere
	anyFailed := false
	for _, t := range p.tests {
		switch t.result {
		case "pass":
			r.passed++
		case "fail":
			r.failed++
			anyFailed = true
		case "skip":
			r.skipped++
		}
		if t.group != "" {
			top, _, _ := strings.Cut(t.name, "/")
			grouped[top] = true
			r.add(t.group, t)
		}
	}
	for _, t := range p.tests {
		if strings.Contains(t.name, "/") || grouped[t.name] {
			continue
		}
		g := groupUnit
		if strings.HasPrefix(t.name, "Example") {
			g = groupExample
		}
		r.add(g, t)
	}
	if pkgFailed && !anyFailed {
		r.failed++ // a package that failed with no failed test: it did not build, or TestMain failed
	}
}

func (r *report) add(group string, t *test) {
	g := r.groups[group]
	if g == nil {
		g = &groupCount{reasons: map[string]int{}}
		r.groups[group] = g
		r.order = append(r.order, group)
	}
	if t.result != "skip" {
		g.ran++
		return
	}
	g.skipped++
	g.reasons[skipReason(t.out)]++
}

// skipReason is what a skipped test said (its t.Skip message, without the
// file:line), or "" if nothing.
func skipReason(out []string) string {
	for _, l := range out {
		l = strings.TrimSpace(l)
		if l == "" || framing(l) || strings.HasPrefix(l, "--- ") {
			continue
		}
		if file, msg, ok := strings.Cut(l, ": "); ok && strings.Contains(file, ".go:") {
			return msg
		}
		return l
	}
	return ""
}

// close prints any package that never ended (go test was killed), then the
// two closing lines.
func (r *report) close() {
	var left []string
	for name := range r.pkgs {
		left = append(left, name)
	}
	sort.Strings(left)
	for _, name := range left {
		r.endPackage(name, r.pkgs[name], true)
	}
	var parts []string
	for _, name := range r.order {
		g := r.groups[name]
		if g.ran+g.skipped == 0 {
			continue
		}
		label := groupLabel[name]
		if label == "" {
			label = name
		}
		s := fmt.Sprintf("%s %d ran", label, g.ran)
		if g.skipped > 0 {
			s += fmt.Sprintf(", %d skipped (%s)", g.skipped, reasons(g.reasons))
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		parts = append(parts, "none")
	}
	fmt.Fprintf(r.w, "test groups: %s\n", strings.Join(parts, "; "))
	fmt.Fprintf(r.w, "%d passed, %d failed\n", r.passed, r.failed)
}

// reasons lists skip reasons: the one reason, or each quoted after its
// count, the most common first.
func reasons(m map[string]int) string {
	type rc struct {
		why string
		n   int
	}
	var list []rc
	for why, n := range m {
		if why == "" {
			why = "no reason given"
		}
		list = append(list, rc{why, n})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n > list[j].n
		}
		return list[i].why < list[j].why
	})
	if len(list) == 1 {
		return list[0].why
	}
	var s []string
	for _, x := range list {
		s = append(s, fmt.Sprintf("%d: %q", x.n, x.why))
	}
	return strings.Join(s, ", ")
}
