package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestNonBlocking: every rank starts one of each non-blocking collective,
// small and large, then runs blocking collectives and point-to-point on the
// same communicator while they are in flight, and waits for them last, in
// reverse order: each result is right, and nothing matched another call's
// messages.
func TestNonBlocking(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				return nonBlockingCase(ctx, c)
			})
		})
	}
}

func nonBlockingCase(ctx context.Context, c *mpi.Comm) error {
	me, n := c.Rank(), c.Size()
	const large = 200_000 // past every inline limit: the data phases run
	big := make([]float64, large)
	for i := range big {
		big[i] = float64(me + i)
	}
	var root []int
	if me == n-1 {
		root = []int{7, 8, 9}
	}
	rb := collectives.Ibarrier(c)
	rc := collectives.Ibcast(c, n-1, root)
	ra := collectives.Iallreduce(c, []float64{float64(me)}, collectives.Sum[float64])
	rl := collectives.Iallreduce(c, big, collectives.Max[float64])
	rr := collectives.Ireduce(c, 0, []int{me + 1}, collectives.Sum[int])
	rg := collectives.Iallgather(c, []int{10 * me})

	// Meanwhile, on the same communicator: blocking collectives, and a
	// ring of point-to-point messages.
	sum, err := collectives.Allreduce(ctx, c, []int{1}, collectives.Sum[int])
	if err != nil || sum[0] != n {
		return fmt.Errorf("blocking Allreduce beside the non-blocking ones: %v, %v", sum, err)
	}
	got, _, err := c.Sendrecv(ctx, (me+1)%n, 0, []byte{byte(me)}, (me+n-1)%n, 0)
	if err != nil || len(got) != 1 || int(got[0]) != (me+n-1)%n {
		return fmt.Errorf("ring beside the non-blocking collectives: %v, %v", got, err)
	}
	if err := collectives.Barrier(ctx, c); err != nil {
		return err
	}

	g, err := rg.Wait(ctx)
	want := make([]int, n)
	for r := range want {
		want[r] = 10 * r
	}
	if err != nil || !slices.Equal(g, want) {
		return fmt.Errorf("Iallgather: %v, %v; want %v", g, err, want)
	}
	r, err := rr.Wait(ctx)
	if wantR := []int{n * (n + 1) / 2}; err != nil || (me == 0) != (r != nil) || me == 0 && !slices.Equal(r, wantR) {
		return fmt.Errorf("Ireduce: %v, %v", r, err)
	}
	l, err := rl.Wait(ctx)
	if err != nil || len(l) != large || l[0] != float64(n-1) || l[large-1] != float64(n-1+large-1) {
		return fmt.Errorf("large Iallreduce: %d elements, %v", len(l), err)
	}
	a, err := ra.Wait(ctx)
	if err != nil || !slices.Equal(a, []float64{float64(n * (n - 1) / 2)}) {
		return fmt.Errorf("Iallreduce: %v, %v", a, err)
	}
	b, err := rc.Wait(ctx)
	if err != nil || !slices.Equal(b, []int{7, 8, 9}) {
		return fmt.Errorf("Ibcast: %v, %v", b, err)
	}
	if _, err := rb.Wait(ctx); err != nil {
		return fmt.Errorf("Ibarrier: %v", err)
	}
	if _, ok, err := rb.Test(); !ok || err != nil {
		return fmt.Errorf("Test of a finished Ibarrier: %v, %v", ok, err)
	}
	return nil
}

// TestNonBlockingInOrder: many non-blocking calls in flight at once on one
// communicator are matched in the order started: each result is its own.
func TestNonBlockingInOrder(t *testing.T) {
	const k = 50
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		reqs := make([]*collectives.Request[[]int], k)
		for i := range reqs {
			reqs[i] = collectives.Iallreduce(c, []int{i * (c.Rank() + 1)}, collectives.Sum[int])
		}
		for i := k - 1; i >= 0; i-- {
			got, err := reqs[i].Wait(ctx)
			if want := i * (1 + 2 + 3 + 4); err != nil || len(got) != 1 || got[0] != want {
				return fmt.Errorf("call %d: %v, %v; want [%d]", i, got, err, want)
			}
		}
		return nil
	})
}

// TestNonBlockingMismatch: ranks that start different non-blocking
// collectives at one point all fail with ErrMismatch, and no rank hangs.
func TestNonBlockingMismatch(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		var err error
		if c.Rank() == 0 {
			_, err = collectives.Ibcast(c, 0, []int{1}).Wait(ctx)
		} else {
			_, err = collectives.Iallreduce(c, []int{1}, collectives.Sum[int]).Wait(ctx)
		}
		if !errors.Is(err, collectives.ErrMismatch) {
			return fmt.Errorf("got %v, want ErrMismatch", err)
		}
		return nil
	})
}

// TestNonBlockingOpPanic: an Op that panics in a non-blocking call fails
// its Request with ErrOpPanicked on every rank; the program goes on.
func TestNonBlockingOpPanic(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		bad := func(acc, in []int) { panic("bad op") } // on the ranks that combine
		_, err := collectives.Iallreduce(c, []int{1}, bad).Wait(ctx)
		if !errors.Is(err, collectives.ErrOpPanicked) {
			return fmt.Errorf("got %v, want ErrOpPanicked", err)
		}
		// The communicator still works.
		sum, err := collectives.Iallreduce(c, []int{1}, collectives.Sum[int]).Wait(ctx)
		if err != nil || sum[0] != 3 {
			return fmt.Errorf("after the panic: %v, %v", sum, err)
		}
		return nil
	})
}

// TestNonBlockingWaitCtx: Wait gives up with its ctx while the call goes
// on; a later Wait gets the result.
func TestNonBlockingWaitCtx(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			time.Sleep(300 * time.Millisecond) // rank 0's first Wait ends before this one starts
		}
		r := collectives.Ibarrier(c)
		if c.Rank() == 0 {
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			if _, err := r.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("Wait with a short ctx: %v, want DeadlineExceeded", err)
			}
		}
		_, err := r.Wait(ctx)
		return err
	})
}
