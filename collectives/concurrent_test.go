package collectives

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"weak"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestConcurrentCalls runs two goroutines per rank that each make a
// same-length Allreduce on one communicator at once, which is not
// supported: each call must either return its own right sum or fail with
// ErrConcurrent, never return a sum that mixes the two goroutines' data.
// Each trial runs on a fresh Dup, since a poisoned communicator stays so.
func TestConcurrentCalls(t *testing.T) {
	trials := 1000
	if testing.Short() {
		trials = 200
	}
	const n = 4
	var right, failed atomic.Int64
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		for trial := range trials {
			d, err := c.Dup(ctx)
			if err != nil {
				return err
			}
			// Lengths alternate between the inline path and the bulk one.
			l := 3
			if trial%8 == 7 {
				l = reduceInline/8 + 1
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for g := range 2 {
				wg.Go(func() {
					v := float64((g + 1) * (c.Rank() + 1)) // goroutine g of every rank sums (g+1)(r+1)
					xs := make([]float64, l)
					for i := range xs {
						xs[i] = v
					}
					got, err := Allreduce(ctx, d, xs, Sum)
					if err != nil {
						if !errors.Is(err, ErrConcurrent) {
							errs[g] = fmt.Errorf("trial %d goroutine %d: %w", trial, g, err)
						}
						failed.Add(1)
						return
					}
					want := float64((g + 1) * n * (n + 1) / 2)
					for i, y := range got {
						if y != want {
							errs[g] = fmt.Errorf("trial %d goroutine %d: wrong sum %v at %d, want %v", trial, g, y, i, want)
							return
						}
					}
					right.Add(1)
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("%d calls returned the right sum, %d failed with ErrConcurrent", right.Load(), failed.Load())
	if failed.Load() == 0 {
		t.Errorf("no call failed with ErrConcurrent: the detection never fired")
	}
}

// TestConcurrentPoisonsEveryRank has only rank 0 run two calls at once,
// the other ranks joining once both have begun: the other ranks' single
// calls must fail too, not hang, and a later call on the communicator fails
// at once, while a Dup of it works.
func TestConcurrentPoisonsEveryRank(t *testing.T) {
	release := make(chan struct{}) // closed once rank 0's two calls are in
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		if err := Barrier(ctx, c); err != nil {
			return err
		}
		calls := 1
		if c.Rank() == 0 {
			calls = 2
		} else {
			<-release
		}
		var wg sync.WaitGroup
		errs := make([]error, calls)
		for g := range calls {
			if c.Rank() == 0 {
				for activeCalls(c) < g { // the first call is in before the second begins
				}
			}
			wg.Go(func() { _, errs[g] = Allreduce(ctx, c, []int{1}, Sum) })
		}
		if c.Rank() == 0 {
			for !poisoned(c) {
			}
			close(release)
		}
		wg.Wait()
		for g, err := range errs {
			if !errors.Is(err, ErrConcurrent) {
				return fmt.Errorf("call %d: %v, want ErrConcurrent", g, err)
			}
		}
		if _, err := Allreduce(ctx, c, []int{1}, Sum); !errors.Is(err, ErrConcurrent) {
			return fmt.Errorf("later call: %v, want ErrConcurrent", err)
		}
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		got, err := Allreduce(ctx, d, []int{1}, Sum)
		if err != nil || got[0] != 3 {
			return fmt.Errorf("on a Dup: %v, %v", got, err)
		}
		return nil
	})
}

// activeCalls returns how many collective calls are in progress on c, and
// poisoned whether c saw two at once.
func activeCalls(c *mpi.Comm) int {
	sh := shadowOf(c)
	if sh == nil {
		return 0
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.active
}

func poisoned(c *mpi.Comm) bool {
	sh := shadowOf(c)
	if sh == nil {
		return false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.poison != nil
}

func shadowOf(c *mpi.Comm) *shadow {
	v, ok := shadows.Load(weak.Make(c))
	if !ok {
		return nil
	}
	return v.(*shadow)
}
