package pool_test

// Multi-process tests: the real gorun runs testdata/mapprog as real rank
// processes on its embedded NATS server.

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testbin"
)

var bin struct{ gorun, mapprog string }

func TestMain(m *testing.M) {
	if !testingShort() {
		testbin.Main(m, "gorun-pool-",
			testbin.Prog{Out: &bin.gorun, Pkg: "../cmd/gorun"},
			testbin.Prog{Out: &bin.mapprog, Pkg: "./testdata/mapprog"})
	}
	os.Exit(m.Run())
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
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := gorun(t, "-n", fmt.Sprint(n), bin.mapprog, "map")
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
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := gorun(t, "-n", fmt.Sprint(n), bin.mapprog, "fail57")
			okLine(t, out, "task 57 failed on rank ")
		})
	}
}
