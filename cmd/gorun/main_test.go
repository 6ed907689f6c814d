package main

// End-to-end tests: the real gorun binary, built in TestMain, runs real rank
// processes (testdata/rankprog, examples/hello, examples/ring) on the real
// embedded NATS server.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/internal/testing/wait"
)

// Binaries built once for every test.
var bin struct {
	gorun, rankprog, hello string
}

func TestMain(m *testing.M) {
	testbin.Main(m, "gorun-e2e-",
		testbin.Prog{Out: &bin.gorun, Pkg: "."},
		testbin.Prog{Out: &bin.rankprog, Pkg: "./testdata/rankprog"},
		testbin.Prog{Out: &bin.hello, Pkg: "../../examples/hello"})
}

// lazyProg is a test program built once, beside gorun (where the hosts'
// tests find it too), by the first test that needs it.
type lazyProg struct {
	once sync.Once
	path string
	err  error
}

func (p *lazyProg) build(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p.once.Do(func() {
		p.path = filepath.Join(filepath.Dir(bin.gorun), name)
		out, err := exec.Command("go", "build", "-o", p.path, pkg).CombinedOutput()
		if err != nil {
			p.err = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	})
	if p.err != nil {
		tb.Fatal(p.err)
	}
	return p.path
}

// job is a gorun process under test.
type job struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{} // closed when gorun has exited and its output is read

	mu     sync.Mutex
	out    []string     // stdout lines so far
	stderr bytes.Buffer // all of stderr

	code   int       // exit status, after done (-1: killed by a signal)
	exitAt time.Time // when Wait returned
}

// startJob starts gorun with args; stdin may be nil.
func startJob(t *testing.T, stdin io.Reader, args ...string) *job {
	t.Helper()
	return startCmd(t, exec.Command(bin.gorun, args...), stdin)
}

// startCmd starts cmd, a command that runs gorun (salloc gorun ...), as
// startJob starts gorun.
func startCmd(t *testing.T, cmd *exec.Cmd, stdin io.Reader) *job {
	t.Helper()
	testbin.Group(t, testbin.GroupMultiProcess)
	j := &job{t: t, done: make(chan struct{})}
	j.cmd = cmd
	j.cmd.Stdin = stdin
	stdout, err := j.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	j.cmd.Stderr = lockedWriter{&j.mu, &j.stderr}
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		br := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				j.mu.Lock()
				j.out = append(j.out, strings.TrimSuffix(line, "\n"))
				j.mu.Unlock()
			}
			if err != nil {
				break
			}
		}
		err := j.cmd.Wait()
		j.exitAt = time.Now()
		j.code = j.cmd.ProcessState.ExitCode()
		if err != nil && j.code == 0 {
			j.code = -2
		}
		close(j.done)
	}()
	t.Cleanup(func() {
		select {
		case <-j.done:
		default:
			j.cmd.Process.Kill()
			<-j.done
		}
	})
	return j
}

// lockedWriter is an io.Writer safe for the test to read while gorun writes.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runJob runs gorun to the end (at most timeout) and returns its exit status,
// stdout lines and stderr.
func runJob(t *testing.T, timeout time.Duration, args ...string) (int, []string, string) {
	t.Helper()
	j := startJob(t, nil, args...)
	code := j.wait(timeout)
	return code, j.lines(), j.errText()
}

// wait waits for gorun to exit and returns its status; it fails the test
// if that takes longer than timeout.
func (j *job) wait(timeout time.Duration) int {
	j.t.Helper()
	select {
	case <-j.done:
		return j.code
	case <-time.After(timeout):
		j.cmd.Process.Kill()
		<-j.done
		j.t.Fatalf("gorun did not exit within %v; stdout:\n%s\nstderr:\n%s", timeout,
			strings.Join(j.lines(), "\n"), j.errText())
		return 0
	}
}

func (j *job) lines() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.out...)
}

func (j *job) errText() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stderr.String()
}

// waitLines waits until stdout has n lines starting with prefix and returns
// them.
func (j *job) waitLines(prefix string, n int, timeout time.Duration) []string {
	j.t.Helper()
	var got []string
	exited := false
	if wait.For(timeout, func() bool {
		got = withPrefix(j.lines(), prefix)
		select {
		case <-j.done:
			exited = true
		default:
		}
		return len(got) >= n || exited
	}) && len(got) >= n {
		return got
	}
	if exited {
		j.t.Fatalf("gorun exited (%d) with %d of %d %q lines; stdout:\n%s\nstderr:\n%s", j.code, len(got), n, prefix,
			strings.Join(j.lines(), "\n"), j.errText())
	}
	j.t.Fatalf("%d of %d %q lines after %v; stderr:\n%s", len(got), n, prefix, timeout, j.errText())
	return nil
}

// waitStderr waits until stderr contains s.
func (j *job) waitStderr(s string, timeout time.Duration) {
	j.t.Helper()
	if !wait.For(timeout, func() bool { return strings.Contains(j.errText(), s) }) {
		j.t.Fatalf("stderr has no %q after %v:\n%s", s, timeout, j.errText())
	}
}

func withPrefix(lines []string, prefix string) []string {
	var got []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	return got
}

// rankPids parses rankprog's "pid RANK PID" lines into rank -> pid.
func rankPids(t *testing.T, lines []string) map[int]int {
	t.Helper()
	pids := make(map[int]int)
	for _, l := range withPrefix(lines, "pid ") {
		var rank, pid int
		if _, err := fmt.Sscanf(l, "pid %d %d", &rank, &pid); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		pids[rank] = pid
	}
	return pids
}

// allPids is the pid of every "pid RANK PID" line.
func allPids(t *testing.T, lines []string) []int {
	t.Helper()
	var pids []int
	for _, l := range withPrefix(lines, "pid ") {
		var rank, pid int
		if _, err := fmt.Sscanf(l, "pid %d %d", &rank, &pid); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// failTime parses rankprog's "fail UNIXNANO" line.
func failTime(t *testing.T, lines []string) time.Time {
	t.Helper()
	f := withPrefix(lines, "fail ")
	if len(f) != 1 {
		t.Fatalf("want one fail line, got %q", f)
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(f[0], "fail "), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, ns)
}

// procState is a process's state letter from /proc/PID/stat and its process
// group; ok is false when there is no such process.
func procState(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0][0], pgrp, true
}

// alive says whether pid is a live (not zombie) process running prog.
func alive(pid int, prog string) bool {
	state, _, ok := procState(pid)
	if !ok || state == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte(prog))
}

// leftovers lists live processes that are one of pids or in one of their
// process groups (each rank leads its own).
func leftovers(pids []int) []string {
	if runtime.GOOS != "linux" {
		return leftoversNoProc(pids)
	}
	groups := make(map[int]bool)
	var left []string
	for _, pid := range pids {
		groups[pid] = true
		if alive(pid, bin.rankprog) || alive(pid, bin.hello) {
			left = append(left, fmt.Sprintf("rank pid %d", pid))
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pgrp, ok := procState(pid); ok && state != 'Z' && groups[pgrp] && !groups[pid] {
			left = append(left, fmt.Sprintf("pid %d in group %d", pid, pgrp))
		}
	}
	return left
}

// leftoversNoProc is leftovers where there is no /proc (macOS, the BSDs):
// signal 0 to a pid, and to its process group, says whether anything is
// left there (a zombie included, until it is reaped).
func leftoversNoProc(pids []int) []string {
	var left []string
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			left = append(left, fmt.Sprintf("rank pid %d", pid))
		} else if syscall.Kill(-pid, 0) == nil {
			left = append(left, fmt.Sprintf("a process in group %d", pid))
		}
	}
	return left
}

// needLinux skips t off Linux, saying what it needs there.
func needLinux(t *testing.T, what string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("needs Linux: %s", what)
	}
}

// assertNoneLeft fails the test if any of pids, or anything in their process
// groups, still runs after grace.
func assertNoneLeft(t *testing.T, pids []int, grace time.Duration) {
	t.Helper()
	if len(pids) == 0 {
		t.Fatal("no rank pids to check")
	}
	var left []string
	if !wait.For(grace, func() bool { left = leftovers(pids); return len(left) == 0 }) {
		for _, pid := range pids {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		t.Fatalf("processes left behind: %v", left)
	}
}

func pidList(m map[int]int) []int {
	var pids []int
	for _, p := range m {
		pids = append(pids, p)
	}
	return pids
}

// gorunLines are the lines of stderr that gorun itself wrote.
func gorunLines(stderr string) []string {
	var got []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "gorun: ") {
			got = append(got, l)
		}
	}
	return got
}

func skipShort(t *testing.T) {
	t.Helper()
	testbin.MultiProcess(t)
}
