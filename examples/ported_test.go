package examples

// End-to-end tests of the examples ported from mpi4py and multiprocessing
// (cpi, matvec, masterworker, poolmap, queue, futures): the real gorun runs them as
// real rank processes, and each checks its own answer.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

func TestPorted(t *testing.T) {
	testbin.MultiProcess(t)
	dir := t.TempDir()
	names := []string{"cpi", "matvec", "masterworker", "poolmap", "queue", "futures"}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../cmd/gorun")
	for _, name := range names {
		build.Args = append(build.Args, "./"+name)
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gorun := filepath.Join(dir, "gorun")
	for _, c := range []struct {
		name string
		n    int
		want string
	}{
		{"cpi", 1, "cpi: OK: pi = 3.141592653590 from 1000000 intervals over 1 ranks"},
		{"cpi", 4, "cpi: OK: pi = 3.141592653590 from 1000000 intervals over 4 ranks"},
		{"matvec", 1, "matvec: OK: 3x3 matrix over 1 ranks, y[2] = 21"},
		{"matvec", 3, "matvec: OK: 9x9 matrix over 3 ranks, y[8] = 684"},
		{"masterworker", 2, "masterworker: OK: 1000 tasks on 1 workers"},
		{"masterworker", 4, "masterworker: OK: 1000 tasks on 3 workers"},
		{"poolmap", 1, "poolmap: OK: 10000 numbers over 1 ranks"},
		{"poolmap", 4, "poolmap: OK: 10000 numbers over 4 ranks"},
		{"queue", 1, "queue: OK: 1000 items from 1 producers, got by 1 ranks"},
		{"queue", 5, "queue: OK: 3000 items from 3 producers, got by 5 ranks"},
		{"futures", 1, "futures: OK: the integral of sqrt(x) over [0, 1] = 0.6666666667 from 491 intervals over 1 ranks"},
		{"futures", 4, "futures: OK: the integral of sqrt(x) over [0, 1] = 0.6666666667 from 491 intervals over 4 ranks"},
	} {
		t.Run(fmt.Sprintf("%s/n=%d", c.name, c.n), func(t *testing.T) {
			out := runOK(t, gorun, "-n", fmt.Sprint(c.n), filepath.Join(dir, c.name))
			okLine(t, out, c.name+": OK:", c.want)
		})
	}
	t.Run("masterworker/n=1", func(t *testing.T) {
		code, out, stderr := run(t, gorun, "-n", "1", filepath.Join(dir, "masterworker"))
		if code == 0 || !strings.Contains(stderr, "masterworker: needs at least 2 ranks") || strings.Contains(stderr, "goroutine") {
			t.Errorf("exit %d, want non-zero with one message; stdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
}

// TestPortedLines: each port is within twice the non-blank lines of its
// Python original (counted as the README counts them: every non-blank
// line, comments and imports included).
func TestPortedLines(t *testing.T) {
	for _, c := range []struct{ dir, py string }{
		{"cpi", "cpi.py"}, {"matvec", "matvec.py"}, {"masterworker", "masterworker.py"},
		{"poolmap", "poolmap.py"}, {"queue", "producers.py"}, {"futures", "futures.py"},
	} {
		goLines, pyLines := nonBlank(t, filepath.Join(c.dir, "main.go")), nonBlank(t, filepath.Join(c.dir, c.py))
		t.Logf("%s: %d lines of Go, %d of Python: %.2fx", c.dir, goLines, pyLines, float64(goLines)/float64(pyLines))
		if goLines > 2*pyLines {
			t.Errorf("%s: %d lines of Go, more than twice the %d of %s", c.dir, goLines, pyLines, c.py)
		}
	}
}

func nonBlank(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}
