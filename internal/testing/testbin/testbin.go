// Package testbin builds, once per test binary, the programs that
// end-to-end tests run as real processes (gorun itself, examples, test
// programs).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/wait"
)

// Prog is a program to build: the package path (relative to the test's
// directory) and where to store the executable's path.
type Prog struct {
	Out *string
	Pkg string
}

// Main is a TestMain: it builds progs with go build into a fresh temporary
// directory named after prefix, runs the tests, removes the directory and
// exits with the tests' status. A build failure is printed as the compiler
// printed it, and exits 1 without running any test.
func Main(m *testing.M, prefix string, progs ...Prog) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, p := range progs {
		abs, err := filepath.Abs(p.Pkg)
		if err != nil {
			abs = p.Pkg
		}
		*p.Out = filepath.Join(dir, filepath.Base(abs)) // "." in cmd/gorun: gorun
		cmd := exec.Command("go", "build", "-o", *p.Out, p.Pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", p.Pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test groups, as `make test` reports them: a test in a group says so with
// t.Attr(GroupKey, group), which go test -json passes on as an "attr"
// event (internal/testing/testprogress counts them). A test in no group is a unit
// test.
const (
	// GroupKey is the attribute that names a test's group.
	GroupKey = "group"
	// GroupMultiProcess: real processes (the real gorun, or rank
	// processes) on a real nats-server.
	GroupMultiProcess = "multi-process"
	// GroupMultiHost: real gorun across network-namespace hosts, over
	// real ssh and sshd.
	GroupMultiHost = "multi-host"
)

// Group puts t in group (GroupMultiProcess, GroupMultiHost).
func Group(t testing.TB, group string) {
	t.Helper()
	t.Attr(GroupKey, group)
}

// MultiProcess puts t in GroupMultiProcess, and skips it with -short.
func MultiProcess(t testing.TB) {
	t.Helper()
	Group(t, GroupMultiProcess)
	if testing.Short() {
		t.Skip("multi-process test skipped with -short")
	}
}

// MultiHost puts t in GroupMultiHost, and skips it with -short.
func MultiHost(t testing.TB) {
	t.Helper()
	Group(t, GroupMultiHost)
	if testing.Short() {
		t.Skip("multi-host test skipped with -short")
	}
}

// WaitFor polls cond (wait.For) until it holds, and fails t,
// saying what it waited for, if it still does not after d. Tests wait for
// a state with it, never by sleeping: a process that is still starting,
// one that is still ending.
func WaitFor(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	if !wait.For(d, cond) {
		t.Fatalf("after %v, still not %s", d, what)
	}
}
