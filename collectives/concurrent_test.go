package collectives

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"weak"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestConcurrentCalls runs two goroutines per rank that each make a
// same-length Allreduce on one communicator at once, which is not
// supported: no call may return a sum, right or one that mixes the two
// goroutines' data; every call on every rank fails with ErrConcurrent.
// On one rank (another each trial), the first call waits, just before its
// status leaves the rank, for the second to begin (shadow.beforeUp): the
// overlap is then seen before that rank's data is committed, the case the
// detection covers, and the other ranks, which run free, must learn of it
// from the call's status or from the poison message, whichever comes. (Two goroutines whose calls happen to run one after the other on
// every rank, in different orders, cannot be told from a program that
// makes two calls in a row, and are not detected: see ErrConcurrent.)
// Each trial runs on a fresh Dup, since a poisoned communicator stays so.
func TestConcurrentCalls(t *testing.T) {
	trials := 1000
	if testing.Short() {
		trials = 200
	}
	const n = 4
	var failed atomic.Int64
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		for trial := range trials {
			d, err := c.Dup(ctx)
			if err != nil {
				return err
			}
			if err := Barrier(ctx, d); err != nil { // makes d's shadow
				return err
			}
			if err := Barrier(ctx, c); err != nil { // d's Barrier has ended on every rank
				return err
			}
			if c.Rank() == trial%n {
				shadowOf(d).beforeUp = func() {
					for activeCalls(d) < 2 && !poisoned(d) {
						runtime.Gosched()
					}
				}
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
					switch {
					case err == nil:
						errs[g] = fmt.Errorf("trial %d goroutine %d: returned %v..., want ErrConcurrent", trial, g, got[0])
					case !errors.Is(err, ErrConcurrent):
						errs[g] = fmt.Errorf("trial %d goroutine %d: %w, want ErrConcurrent", trial, g, err)
					default:
						failed.Add(1)
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("%d calls failed with ErrConcurrent", failed.Load())
}

// TestConcurrentPoisonsEveryRank has only rank 0 run two calls at once,
// the other ranks joining once both have begun: the other ranks' single
// calls must fail too, not hang, and a later call on the communicator fails
// at once, while a Dup of it works. The calls run with a context that
// can end and with one that never does (which a call does not copy: the
// poison alone ends it).
func TestConcurrentPoisonsEveryRank(t *testing.T) {
	for _, never := range []bool{false, true} {
		t.Run(fmt.Sprintf("never-ending=%v", never), func(t *testing.T) { concurrentPoisons(t, never) })
	}
}

func concurrentPoisons(t *testing.T, never bool) {
	release := make(chan struct{}) // closed once rank 0's two calls are in
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		if err := Barrier(ctx, c); err != nil {
			return err
		}
		if never {
			ctx = context.Background()
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

// madeShadow makes c's shadow (a Barrier, every rank's first call on c)
// and returns it.
func madeShadow(ctx context.Context, c *mpi.Comm) (*shadow, error) {
	if err := Barrier(ctx, c); err != nil {
		return nil, err
	}
	return shadowOf(c), nil
}

// countAgreements makes c's shadow and counts, from then on, this rank's
// calls on it that take the agreement.
func countAgreements(ctx context.Context, c *mpi.Comm) (*shadow, *atomic.Int32, error) {
	sh, err := madeShadow(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	agreed := new(atomic.Int32)
	sh.beforeUp = func() { agreed.Add(1) }
	return sh, agreed, nil
}

// reserveCalls numbers k calls on sh now, alike on every rank that
// reserves them at the same point, and returns the first one's number.
func reserveCalls(sh *shadow, k uint32) uint32 {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.seq += k
	return sh.seq - k + 1
}

func shadowOf(c *mpi.Comm) *shadow {
	v, ok := shadows.Load(weak.Make(c))
	if !ok {
		return nil
	}
	return v.(*shadow)
}
