package collectives

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestScatterTenOverFour: 10 elements over 4 ranks are cut 3, 3, 2, 2, in
// order, and Gather puts them back together.
func TestScatterTenOverFour(t *testing.T) {
	all := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	wantLens := []int{3, 3, 2, 2}
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		var in []float64
		if c.Rank() == 0 {
			in = all
		}
		part, err := Scatter(ctx, c, 0, in)
		if err != nil {
			return err
		}
		start := 0
		for _, l := range wantLens[:c.Rank()] {
			start += l
		}
		if !slices.Equal(part, all[start:start+wantLens[c.Rank()]]) {
			return fmt.Errorf("rank %d got %v", c.Rank(), part)
		}
		back, err := Gather(ctx, c, 0, part)
		if err != nil {
			return err
		}
		if c.Rank() == 0 && !slices.Equal(back, all) {
			return fmt.Errorf("gathered %v", back)
		}
		return nil
	})
}

// TestUserRecvNeverMatchesCollective posts a receive for any source and any
// tag on the communicator before running collectives on it: only the
// program's own message may match it.
func TestUserRecvNeverMatchesCollective(t *testing.T) {
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		var req *mpi.Request
		if c.Rank() == 0 {
			req = c.Irecv(mpi.AnySource, mpi.AnyTag)
		}
		for i := range 5 {
			if _, err := Bcast(ctx, c, i%c.Size(), []int{i}); err != nil {
				return err
			}
			if _, err := Allreduce(ctx, c, make([]float64, 50000), Sum); err != nil {
				return err
			}
			if err := Barrier(ctx, c); err != nil {
				return err
			}
		}
		// Rank 3 sends only once rank 0 has looked: a last Barrier orders the
		// two (rank 3 could leave the loop's last Barrier before rank 0 does).
		if c.Rank() == 0 {
			select {
			case <-req.Done():
				st, _ := req.Wait(ctx)
				return fmt.Errorf("the program's receive matched %q from rank %d tag %d", req.Data(), st.Source, st.Tag)
			default:
			}
		}
		if err := Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 3 {
			if err := c.Send(ctx, 0, 7, []byte("user")); err != nil {
				return err
			}
		}
		if c.Rank() == 0 {
			st, err := req.Wait(ctx)
			if err != nil {
				return err
			}
			if string(req.Data()) != "user" || st.Source != 3 || st.Tag != 7 {
				return fmt.Errorf("the program's receive got %q from %d tag %d", req.Data(), st.Source, st.Tag)
			}
		}
		return nil
	})
}

// TestConcurrentCommunicators runs collectives on the world and on a Dup of
// it at the same time, from two goroutines per rank, with ranks at uneven
// speeds: the calls on one never see the other's messages.
func TestConcurrentCommunicators(t *testing.T) {
	mpitest.Run(t, 5, func(ctx context.Context, c *mpi.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		run := func(comm *mpi.Comm, base int) error {
			for i := range 20 {
				if c.Rank() == i%c.Size() {
					time.Sleep(time.Millisecond)
				}
				got, err := Allreduce(ctx, comm, []int{base + i}, Sum)
				if err != nil {
					return err
				}
				if got[0] != comm.Size()*(base+i) {
					return fmt.Errorf("call %d: Allreduce gave %d, want %d", i, got[0], comm.Size()*(base+i))
				}
				b, err := Bcast(ctx, comm, i%comm.Size(), []int{base - i})
				if err != nil {
					return err
				}
				if b[0] != base-i {
					return fmt.Errorf("call %d: Bcast gave %d, want %d", i, b[0], base-i)
				}
			}
			return nil
		}
		errs := make(chan error, 1)
		go func() { errs <- run(d, 1000) }()
		err1 := run(c, 0)
		if err2 := <-errs; err2 != nil {
			return fmt.Errorf("on the Dup: %w", err2)
		}
		return err1
	})
}

// TestFastRankRunsAhead: roots that only send return at once and start the
// next call while other ranks are still in the previous one; each call's
// messages must still go to that call.
func TestFastRankRunsAhead(t *testing.T) {
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		for i := range 30 {
			if c.Rank() == 3 && i%5 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			var in []int
			if c.Rank() == 0 {
				in = []int{i, i * i}
			}
			got, err := Bcast(ctx, c, 0, in)
			if err != nil {
				return err
			}
			if got[0] != i || got[1] != i*i {
				return fmt.Errorf("call %d got %v", i, got)
			}
			sum, err := Reduce(ctx, c, 0, []int{i}, Sum)
			if err != nil {
				return err
			}
			if c.Rank() == 0 && sum[0] != 4*i {
				return fmt.Errorf("call %d: Reduce gave %v", i, sum)
			}
		}
		return nil
	})
}

// TestClosedCommunicator: a collective on a closed communicator fails with
// mpi.ErrClosed instead of running on the shadow.
func TestClosedCommunicator(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		if err := Barrier(ctx, d); err != nil {
			return err
		}
		d.Close()
		if err := Barrier(ctx, d); !errors.Is(err, mpi.ErrClosed) {
			return fmt.Errorf("Barrier on a closed communicator: %v", err)
		}
		return nil
	})
}

// TestContextCanceled: a collective that some rank never joins returns
// ctx's error when ctx ends; and mpi.ErrPeerLost at once once that rank
// has closed its world.
func TestContextCanceled(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 2 {
			// Never joins; no rank leaves before every call has ended.
			for r := range 2 {
				if _, _, err := c.Recv(ctx, r, 99); err != nil {
					return err
				}
			}
			for r := range 2 {
				if err := c.Send(ctx, r, 99, nil); err != nil {
					return err
				}
			}
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := Allreduce(cctx, c, []int{1}, Sum)
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("want DeadlineExceeded, got %v", err)
		}
		if err := c.Send(ctx, 2, 99, nil); err != nil {
			return err
		}
		_, _, err = c.Recv(ctx, 2, 99)
		return err
	})
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 2 {
			return nil // never joins, and leaves
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		start := time.Now()
		_, err := Allreduce(cctx, c, []int{1}, Sum)
		// (rank 2 left, or a rank that learnt it first and left too)
		if !errors.Is(err, mpi.ErrPeerLost) || time.Since(start) > 5*time.Second {
			return fmt.Errorf("want ErrPeerLost at once, got %v after %v", err, time.Since(start))
		}
		return nil
	})
}
