package pool_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// TestTaskPanic: a task whose fn panics fails the call as a returned error
// would: every rank returns a *TaskError naming the task, the rank that ran
// it, the panic's message and its line, and no process ends (the ranks'
// communicator goes on: a Map after it works). With Map and MapUnordered,
// on one rank and on several.
func TestTaskPanic(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		for _, unordered := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/unordered=%v", n, unordered), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				errs := make([]error, n)
				err := mpitest.World(ctx, n, func(ctx context.Context, c *mpi.Comm) error {
					var in []int
					if c.Rank() == 0 {
						in = seq(100)
					}
					fn := func(ctx context.Context, x int) (int, error) {
						if x == 57 {
							var m map[string]int
							m["task"] = x // panics: assignment to entry in nil map
						}
						return x, nil
					}
					if unordered {
						errs[c.Rank()] = pool.MapUnordered(ctx, c, in, fn, func(int, int) error { return nil })
					} else {
						_, errs[c.Rank()] = pool.Map(ctx, c, in, fn)
					}
					// The ranks live on, and so does their communicator.
					got, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) { return 2 * x, nil })
					if err != nil || (c.Rank() == 0 && (len(got) != 100 || got[99] != 198)) {
						return fmt.Errorf("the Map after the panic: %v, %d results", err, len(got))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var who = -1
				for r, err := range errs {
					var te *pool.TaskError
					if !errors.As(err, &te) || te.Index != 57 {
						t.Errorf("rank %d: %v; want a TaskError for task 57", r, err)
						continue
					}
					if who < 0 {
						who = te.Rank
					}
					want := fmt.Sprintf(`^pool: task 57 \(on rank %d\): panic: assignment to entry in nil map \(at panic_test\.go:\d+\)$`, who)
					if te.Rank != who || !regexp.MustCompile(want).MatchString(err.Error()) {
						t.Errorf("rank %d: %q, want it to match %q", r, err, want)
					}
				}
				t.Logf("%v", errs[0])
			})
		}
	}
}

// TestFailureReachesIdleRanks: the last task fails long after the other
// ranks have run out of work; they still return its TaskError, not nil (a
// rank told to stop before the outcome was known heard of no failure).
func TestFailureReachesIdleRanks(t *testing.T) {
	const n = 4
	errs := make([]error, n)
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = seq(20)
		}
		_, errs[c.Rank()] = pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			if x == 19 {
				time.Sleep(300 * time.Millisecond) // every other rank is idle by now
				return 0, errors.New("the last task fails")
			}
			return x, nil
		})
		return nil
	})
	for r, err := range errs {
		var te *pool.TaskError
		if !errors.As(err, &te) || te.Index != 19 {
			t.Errorf("rank %d: %v, want task 19's TaskError", r, err)
		}
	}
}
