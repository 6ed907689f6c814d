package pool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// TestLostRank: a rank lost in the middle of a call (cut off, as a rank
// that dies under gorun --on-failure continue is to its peers) hands back
// what it held: every result comes, right, in order, each once, and the
// other ranks return nil; with Map, MapUnordered and Run.
func TestLostRank(t *testing.T) {
	const n, k, lost = 4, 1000, 3
	for _, call := range []string{"Map", "MapUnordered", "Run"} {
		t.Run(call, func(t *testing.T) {
			net := mpitest.NewNet(mpitest.Faults{})
			var ranOnLost atomic.Int64
			errs := make([]error, n)
			delivered := make([]int, k)
			var results []int
			net.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				fn := func(ctx context.Context, x int) (int, error) {
					if c.Rank() == lost && ranOnLost.Add(1) == 25 {
						net.Cut(lost)
					}
					time.Sleep(50 * time.Microsecond)
					return 2*x + 1, nil
				}
				var in []int
				if c.Rank() == 0 {
					in = seq(k)
				}
				ctx, cancel := context.WithTimeout(ctx, time.Minute) // a lost task would hang the call
				defer cancel()
				var err error
				switch call {
				case "Map":
					var got []int
					got, err = pool.Map(ctx, c, in, fn, pool.Chunk(4))
					if c.Rank() == 0 {
						results = got
					}
				case "MapUnordered":
					err = pool.MapUnordered(ctx, c, in, fn, func(i, out int) error {
						delivered[i]++
						if out != 2*i+1 {
							return fmt.Errorf("task %d: %d", i, out)
						}
						return nil
					}, pool.Chunk(4))
				case "Run":
					err = pool.Run(ctx, c, fn, func(ctx context.Context, ex *pool.Executor[int, int]) error {
						var fs []*pool.Future[int]
						for _, x := range in {
							fs = append(fs, ex.Submit(x))
						}
						for f, err := range ex.AsCompleted(ctx, fs...) {
							if err != nil {
								return err
							}
							out, _ := f.Wait(ctx)
							delivered[f.Index()]++
							if out != 2*f.Index()+1 {
								return fmt.Errorf("task %d: %d", f.Index(), out)
							}
						}
						return nil
					})
				}
				errs[c.Rank()] = err
				return nil
			})
			for r, err := range errs {
				if r != lost && err != nil {
					t.Errorf("rank %d: %v", r, err)
				}
			}
			if errs[lost] == nil {
				t.Errorf("the lost rank's call returned nil")
			}
			if ranOnLost.Load() < 25 {
				t.Fatalf("the lost rank ran %d tasks: it was never cut", ranOnLost.Load())
			}
			if call == "Map" {
				if len(results) != k {
					t.Fatalf("%d results, want %d", len(results), k)
				}
				for i, out := range results {
					if out != 2*i+1 {
						t.Fatalf("result %d = %d, want %d", i, out, 2*i+1)
					}
				}
				return
			}
			for i, d := range delivered {
				if d != 1 {
					t.Fatalf("task %d's result came %d times", i, d)
				}
			}
		})
	}
}

// TestRetries: a task that kills every rank it is handed to ends the call
// with a *TaskError naming it (not another task of its chunk) once it has
// lost more than Retries ranks; the surviving ranks all return it.
func TestRetries(t *testing.T) {
	const n, k = 5, 100
	net := mpitest.NewNet(mpitest.Faults{})
	errs := make([]error, n)
	var mu sync.Mutex
	cut := map[int]bool{}
	net.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		fn := func(ctx context.Context, x int) (int, error) {
			switch {
			case c.Rank() == 0 && x == 0:
				<-ctx.Done() // rank 0 stays busy until the call ends: it takes no lost task
				return 0, ctx.Err()
			case x == 57:
				mu.Lock()
				cut[c.Rank()] = true
				mu.Unlock()
				net.Cut(c.Rank())
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return x, nil
		}
		var in []int
		if c.Rank() == 0 {
			in = seq(k)
		}
		// Static: task 57 is in rank 2's block (tasks 40-59, one chunk),
		// which goes again task by task to the others once rank 2 is lost;
		// then task 57 alone loses two more ranks, the second one more than
		// Retries(1).
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, errs[c.Rank()] = pool.Map(ctx, c, in, fn, pool.Static(), pool.Retries(1))
		return nil
	})
	if len(cut) != 3 || !cut[2] {
		t.Errorf("ranks %v were lost, want rank 2 and two more", cut)
	}
	for r := range n {
		var te *pool.TaskError
		if !cut[r] && (!errors.As(errs[r], &te) || te.Index != 57) {
			t.Errorf("rank %d: %v, want task 57's TaskError", r, errs[r])
		}
	}
	t.Logf("%v", errs[0])
}
