package collectives_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestBlockedAsItself: ranks waiting in a collective show in the hang
// report's registry as the collective (its name, root, communicator and
// number, the program's line), never as the messages it is made of:
// over messages, and on a host's shared-memory flags (where the call's
// stack is taken only as it goes to sleep: blocked.Parking).
func TestBlockedAsItself(t *testing.T) {
	t.Run("messages", func(t *testing.T) { testBlockedAsItself(t, mpitest.Run) })
	t.Run("flags", func(t *testing.T) { testBlockedAsItself(t, mpitest.RunShared) })
}

func testBlockedAsItself(t *testing.T, run func(testing.TB, int, func(context.Context, *mpi.Comm) error, ...mpi.Option)) {
	src, err := os.ReadFile("blocked_test.go")
	if err != nil {
		t.Fatal(err)
	}
	at := ""
	for i, l := range strings.Split(string(src), "\n") {
		if strings.HasSuffix(l, "collectives.Bcast(ctx, c, 1, data)") {
			at = "blocked_test.go:" + strconv.Itoa(i+1)
		}
	}
	run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		data := []int{c.Rank()}
		if c.Rank() == 2 {
			// The others are in Bcast: wait until both show, then join.
			deadline := time.Now().Add(20 * time.Second)
			for {
				cs, _ := blocked.Snapshot()
				n := 0
				for _, x := range cs {
					if strings.HasPrefix(x.Site, "blocked_test.go:") {
						if !x.Coll || x.Op != "Bcast" || x.Root != 1 || x.Comm != "world" || x.Seq != 1 || x.Site != at {
							return fmt.Errorf("blocked in %+v, want Bcast(root=1, world) call 1 at %s", x, at)
						}
						n++
					}
				}
				if n == 2 {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%d ranks in Bcast after 20s: %+v", n, cs)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		_, err := collectives.Bcast(ctx, c, 1, data)
		return err
	})
}

// TestCountedAsItself: each collective call counts once per rank in the
// statistics (gorun --stats), as itself; the waits inside it are not the
// program's and count nothing.
func TestCountedAsItself(t *testing.T) {
	calls := func(op string) int64 {
		for _, o := range blocked.Ops() {
			if o.Op == op {
				return o.Calls
			}
		}
		return 0
	}
	const n, rounds = 3, 4
	barriers, waits := calls("Barrier"), calls("Wait")
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		for range rounds {
			if err := collectives.Barrier(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if got := calls("Barrier") - barriers; got != n*rounds {
		t.Errorf("%d Barrier calls counted, want %d", got, n*rounds)
	}
	if got := calls("Wait") - waits; got != 0 {
		t.Errorf("the Barriers counted %d Wait calls of their own", got)
	}
}
