package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

var tool string // this command, built once

func TestMain(m *testing.M) {
	testbin.Main(m, "testprogress-", testbin.Prog{Out: &tool, Pkg: "."})
}

// runTool runs the real testprogress, and so the real go test, on the
// packages of testdata/fake (a module of its own): good (unit, grouped
// and skipped tests, an Example), bad (failing tests and subtests),
// broken (does not compile) and crash (exits in the middle of a test).
func runTool(t *testing.T, args ...string) (lines []string, code int) {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Dir = filepath.Join("testdata", "fake")
	cmd.Env = append(os.Environ(), "GOFLAGS=-count=1", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"), code
}

// index is the index of the first line of lines that starts with prefix,
// or -1.
func index(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

func TestReport(t *testing.T) {
	lines, code := runTool(t, "./...")
	text := strings.Join(lines, "\n")
	t.Logf("output:\n%s", text)
	if code != 1 {
		t.Errorf("exit status %d, want 1 (tests failed)", code)
	}
	// Every package, with go test's own line.
	for _, want := range []string{"ok  \tfake/good\t", "FAIL\tfake/bad\t", "FAIL\tfake/broken [build failed]", "FAIL\tfake/crash\t"} {
		if index(lines, want) < 0 {
			t.Errorf("no %q line", want)
		}
	}
	// A failure's output, in go test's order and without -json's framing;
	// nothing of the tests that passed.
	order := []string{"    bad_test.go:6: boom in sub", "--- FAIL: TestFails/sub", "    bad_test.go:8: boom in parent", "--- FAIL: TestFails ", "FAIL\tfake/bad\t"}
	last := -1
	for _, want := range order {
		i := index(lines, want)
		if i <= last {
			t.Errorf("%q at line %d, want it after line %d (order %q)", want, i, last, order)
		}
		last = i
	}
	for _, bad := range []string{"quiet when it passes", "ok sub log", "noise", "=== RUN", "=== ATTR", "--- PASS", "--- SKIP"} {
		if strings.Contains(text, bad) {
			t.Errorf("output has %q, which go test without -v does not print", bad)
		}
	}
	if index(lines, "broken/broken_test.go:5:28: undefined: undefinedThing") < 0 {
		t.Errorf("no compiler error for fake/broken")
	}
	if i := index(lines, "    crash_test.go:8: before the crash"); i < 0 || !strings.HasPrefix(lines[i+1], "--- FAIL: TestCrash (did not finish") {
		t.Errorf("the test the crash ended is not shown, or not as failed")
	}
	// The two closing lines: the groups, then the totals, last.
	n := len(lines)
	if want := "test groups: unit 4 ran; multi-process 1 ran; multi-host/SSH 0 ran, 2 skipped (needs root); examples 1 ran"; lines[n-2] != want {
		t.Errorf("groups line %q, want %q", lines[n-2], want)
	}
	// Passed: TestUnit, TestProcs, TestHosts2, Example, TestFails/ok,
	// TestPasses. Failed: TestFails, TestFails/sub, TestCrash, and broken,
	// which has no test to fail.
	if want := "6 passed, 4 failed"; lines[n-1] != want {
		t.Errorf("last line %q, want %q", lines[n-1], want)
	}
}

// Skips say why; go test's flags pass through; all passed: exit 0.
func TestReportShort(t *testing.T) {
	lines, code := runTool(t, "-short", "./good")
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	want := []string{
		"ok  \tfake/good",
		"test groups: unit 1 ran; multi-process 1 ran; multi-host/SSH 0 ran, 2 skipped (needs root); examples 1 ran",
		"4 passed, 0 failed",
	}
	if len(lines) != len(want) {
		t.Fatalf("output %q, want %q", lines, want)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}
}

func TestSkipReason(t *testing.T) {
	for _, tc := range []struct {
		out  []string
		want string
	}{
		{[]string{"=== RUN   TestX\n", "    x_test.go:12: needs root (network namespaces)\n", "--- SKIP: TestX (0.00s)\n"}, "needs root (network namespaces)"},
		{[]string{"=== RUN   TestX\n", "    plain words: no file\n"}, "plain words: no file"},
		{[]string{"=== RUN   TestX\n", "--- SKIP: TestX (0.00s)\n"}, ""},
	} {
		if got := skipReason(tc.out); got != tc.want {
			t.Errorf("skipReason(%q) = %q, want %q", tc.out, got, tc.want)
		}
	}
}

func TestReasons(t *testing.T) {
	if got, want := reasons(map[string]int{"needs root": 7}), "needs root"; got != want {
		t.Errorf("one reason: %q, want %q", got, want)
	}
	got := reasons(map[string]int{"160 MiB flood; skipped with -short": 1, "multi-process test skipped with -short": 3, "": 1})
	if want := `3: "multi-process test skipped with -short", 1: "160 MiB flood; skipped with -short", 1: "no reason given"`; got != want {
		t.Errorf("several reasons: %q, want %q", got, want)
	}
}
