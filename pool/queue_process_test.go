package pool_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProcessesQueue: the real gorun runs testdata/queueprog (built with the
// race detector) as real processes: every rank puts and gets from two
// goroutines each on a bounded queue owned by the last rank, and rank 0
// checks every item came out once, each producer's in order.
func TestProcessesQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := filepath.Join(t.TempDir(), "queueprog")
	if b, err := exec.Command("go", "build", "-race", "-o", prog, "./testdata/queueprog").CombinedOutput(); err != nil {
		t.Fatalf("go build -race ./testdata/queueprog: %v\n%s", err, b)
	}
	for _, n := range []int{1, 3, 6} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := gorun(t, "-n", fmt.Sprint(n), prog)
			want := fmt.Sprintf("queueprog: OK: %d ranks, %d items, every item once", n, n*2*500)
			if !strings.Contains(out, want) {
				t.Fatalf("no %q in:\n%s", want, out)
			}
			t.Log(strings.TrimSpace(out))
		})
	}
}
