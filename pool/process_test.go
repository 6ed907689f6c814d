package pool_test

// Multi-process tests: the real gorun runs testdata/mapprog, built with the
// race detector, as real rank processes on its embedded NATS server.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testbin"
)

var bin struct{ gorun string }

func TestMain(m *testing.M) {
	if !testingShort() {
		testbin.Main(m, "gorun-pool-", testbin.Prog{Out: &bin.gorun, Pkg: "../cmd/gorun"})
	}
	os.Exit(m.Run())
}

// mapprog builds testdata/mapprog with the race detector, so that a data
// race in any rank process fails its job (the go build cache makes this
// cheap after the first time).
func mapprog(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "mapprog")
	if b, err := exec.Command("go", "build", "-race", "-o", out, "./testdata/mapprog").CombinedOutput(); err != nil {
		t.Fatalf("go build -race ./testdata/mapprog: %v\n%s", err, b)
	}
	return out
}

// testingShort is testing.Short before flag parsing has happened in m.Run.
func testingShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

func gorun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin.gorun, append([]string{"--timeout", "2m"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gorun %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func okLine(t *testing.T, out, want string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "mapprog: OK:") && strings.Contains(l, want) {
			t.Log(l)
			return
		}
	}
	t.Fatalf("no \"mapprog: OK:\" line containing %q in:\n%s", want, out)
}

// TestProcessesMap: Map on 0, 1, n-1 and 1000 inputs of ints and structs,
// between real processes, for n = 1, 2, 3, 5, 8.
func TestProcessesMap(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := mapprog(t)
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := gorun(t, "-n", fmt.Sprint(n), prog, "map")
			okLine(t, out, fmt.Sprintf("%d ranks, inputs", n))
		})
	}
}

// TestProcessesTaskError: task 57 of 200 fails; every process returns a
// TaskError naming it and its rank within a second.
func TestProcessesTaskError(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := mapprog(t)
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := gorun(t, "-n", fmt.Sprint(n), prog, "fail57")
			okLine(t, out, "task 57 failed on rank ")
		})
	}
}
