package examples

// End-to-end test of examples/counter: the real gorun runs it as real rank
// processes, and it checks its own totals.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

func TestCounter(t *testing.T) {
	testbin.MultiProcess(t)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../cmd/gorun", "./counter")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, n := range []int{1, 4} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := runOK(t, filepath.Join(dir, "gorun"), "-n", fmt.Sprint(n), filepath.Join(dir, "counter"))
			okLine(t, out, "counter: OK:", fmt.Sprintf("%d ranks, counter %d, histogram of 16 bins sums to %d, every rank logged once", n, n*1000, n*1000))
		})
	}
}
