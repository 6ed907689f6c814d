package mpi_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// winNets runs fn as a test over the in-process NATS server, over one
// shared-memory segment, and over the in-memory network with random delays
// and reordering.
func winNets(t *testing.T, n int, fn func(ctx context.Context, c *mpi.Comm) error) {
	t.Run("nats", func(t *testing.T) { mpitest.Run(t, n, fn) })
	t.Run("shm", func(t *testing.T) { mpitest.RunShared(t, n, fn) })
	t.Run("mem", func(t *testing.T) {
		mpitest.NewNet(mpitest.Faults{Seed: 3, MaxDelay: 200 * time.Microsecond, Reorder: true}).Run(t, n, fn)
	})
}

// TestWinAccumulateOverlap: every rank accumulates into overlapping ranges
// of every rank's window (Sum, Max and Bxor on three windows); after a
// Fence each window equals the serial reference, which every rank computes
// alone from the same random draws.
func TestWinAccumulateOverlap(t *testing.T) {
	const n, m, rounds = 5, 37, 20
	winNets(t, n, func(ctx context.Context, c *mpi.Comm) error {
		sum, err := mpi.NewWin[int64](ctx, c, m)
		if err != nil {
			return err
		}
		mx, err := mpi.NewWin[float64](ctx, c, m)
		if err != nil {
			return err
		}
		xor, err := mpi.NewWin[uint32](ctx, c, m)
		if err != nil {
			return err
		}
		refSum := make([][]int64, n)
		refMax := make([][]float64, n)
		refXor := make([][]uint32, n)
		for r := range n {
			refSum[r], refMax[r], refXor[r] = make([]int64, m), make([]float64, m), make([]uint32, m)
		}
		type access struct{ target, lo, k int }
		draws := func(rank int) []access {
			rng := rand.New(rand.NewPCG(uint64(rank), 9))
			var as []access
			for range rounds {
				lo := rng.IntN(m)
				as = append(as, access{rng.IntN(n), lo, 1 + rng.IntN(m-lo)})
			}
			return as
		}
		val := func(rank, round, i int) int64 { return int64(rank*1000 + round*10 + i%7) }
		for rank := range n {
			for round, a := range draws(rank) {
				for i := range a.k {
					v := val(rank, round, i)
					refSum[a.target][a.lo+i] += v
					refMax[a.target][a.lo+i] = max(refMax[a.target][a.lo+i], float64(v))
					refXor[a.target][a.lo+i] ^= uint32(v)
				}
			}
		}
		for round, a := range draws(c.Rank()) {
			ds, df, dx := make([]int64, a.k), make([]float64, a.k), make([]uint32, a.k)
			for i := range a.k {
				v := val(c.Rank(), round, i)
				ds[i], df[i], dx[i] = v, float64(v), uint32(v)
			}
			if err := sum.Accumulate(ctx, a.target, a.lo, ds, mpi.AccSum); err != nil {
				return err
			}
			if err := mx.Accumulate(ctx, a.target, a.lo, df, mpi.AccMax); err != nil {
				return err
			}
			if err := xor.Accumulate(ctx, a.target, a.lo, dx, mpi.AccBxor); err != nil {
				return err
			}
		}
		for _, w := range []interface{ Fence(context.Context) error }{sum, mx, xor} {
			if err := w.Fence(ctx); err != nil {
				return err
			}
		}
		me := c.Rank()
		for i := range m {
			if sum.Local()[i] != refSum[me][i] || mx.Local()[i] != refMax[me][i] || xor.Local()[i] != refXor[me][i] {
				return fmt.Errorf("element %d: sum %d max %v xor %d, want %d %v %d", i,
					sum.Local()[i], mx.Local()[i], xor.Local()[i], refSum[me][i], refMax[me][i], refXor[me][i])
			}
		}
		// And through Get, from the next rank.
		next := (me + 1) % n
		got := make([]int64, m)
		if err := sum.Get(ctx, next, 0, got); err != nil {
			return err
		}
		for i := range m {
			if got[i] != refSum[next][i] {
				return fmt.Errorf("Get from rank %d, element %d: %d, want %d", next, i, got[i], refSum[next][i])
			}
		}
		for _, w := range []interface{ Free(context.Context) error }{sum, mx, xor} {
			if err := w.Free(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestWinPutGetLarge: a Put of 20 MiB and a bit (several requests of
// winChunk) into another rank's window, then a Get of it back from a
// third rank, round-trips every element; a Put into the middle of it too.
func TestWinPutGetLarge(t *testing.T) {
	const n = 20<<20/8 + 3
	winNets(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		size := 0
		if c.Rank() == 1 {
			size = n
		}
		w, err := mpi.NewWin[float64](ctx, c, size)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			data := make([]float64, n)
			for i := range data {
				data[i] = float64(i) * 0.5
			}
			if err := w.Put(ctx, 1, 0, data); err != nil {
				return err
			}
			if err := w.Put(ctx, 1, 1<<20+5, []float64{-1, -2}); err != nil {
				return err
			}
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 2 {
			buf := make([]float64, n)
			if err := w.Get(ctx, 1, 0, buf); err != nil {
				return err
			}
			for i, v := range buf {
				want := float64(i) * 0.5
				switch i {
				case 1<<20 + 5:
					want = -1
				case 1<<20 + 6:
					want = -2
				}
				if v != want {
					return fmt.Errorf("element %d: %v, want %v", i, v, want)
				}
			}
		}
		return w.Free(ctx)
	})
}

// TestWinPassiveTarget: rank 1 computes, calling nothing of gorun, until
// the other ranks have finished their Gets, Puts and FetchAndOps on its
// window: the window's goroutine serves them without rank 1. (Were the
// window served only when its rank calls in, rank 1 would compute until
// the deadline and the test fail.)
func TestWinPassiveTarget(t *testing.T) {
	const n = 4
	for _, tr := range []struct {
		name string
		run  func(testing.TB, int, func(context.Context, *mpi.Comm) error, ...mpi.Option)
	}{{"nats", mpitest.Run}, {"shm", mpitest.RunShared}} {
		t.Run(tr.name, func(t *testing.T) { passiveTarget(t, n, tr.run) })
	}
}

func passiveTarget(t *testing.T, n int, run func(testing.TB, int, func(context.Context, *mpi.Comm) error, ...mpi.Option)) {
	var finished atomic.Int32
	run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, 8)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			w.Local()[0] = 42 // before the Fence: no one accesses it yet
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 1 {
			deadline := time.Now().Add(30 * time.Second)
			x := 1.0
			for int(finished.Load()) < n-1 {
				for range 1000 {
					x = x*1.0000001 + 1e-9
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the others' calls did not complete while rank 1 computed (x=%v)", x)
				}
			}
		} else {
			start := time.Now()
			for range 50 {
				buf := make([]int64, 1)
				if err := w.Get(ctx, 1, 0, buf); err != nil {
					return err
				}
				if buf[0] != 42 {
					return fmt.Errorf("Get: %d, want 42", buf[0])
				}
				if _, err := w.FetchAndOp(ctx, 1, 1, 1, mpi.AccSum); err != nil {
					return err
				}
			}
			t.Logf("rank %d: 100 calls on computing rank 1 in %v", c.Rank(), time.Since(start))
			finished.Add(1)
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 1 && w.Local()[1] != int64(50*(n-1)) {
			return fmt.Errorf("counter %d, want %d", w.Local()[1], 50*(n-1))
		}
		return w.Free(ctx)
	})
}

// TestWinLockExclusive: every rank increments a counter on rank 0 with a
// Get and a Put inside an exclusive Lock, many times: no increment is
// lost. Shared locks are held by several ranks at once.
func TestWinLockExclusive(t *testing.T) {
	const n, times = 4, 30
	winNets(t, n, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int32](ctx, c, 1)
		if err != nil {
			return err
		}
		for range times {
			if err := w.Lock(ctx, 0, true); err != nil {
				return err
			}
			x := make([]int32, 1)
			if err := w.Get(ctx, 0, 0, x); err != nil {
				return err
			}
			if err := w.Put(ctx, 0, 0, []int32{x[0] + 1}); err != nil {
				return err
			}
			if err := w.Unlock(ctx, 0); err != nil {
				return err
			}
		}
		// Shared: every rank holds it at once, seen by a counter of
		// holders that reaches n.
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if err := w.Lock(ctx, 1, false); err != nil {
			return err
		}
		if _, err := w.FetchAndOp(ctx, 1, 0, 1, mpi.AccSum); err != nil {
			return err
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			x := make([]int32, 1)
			if err := w.Get(ctx, 1, 0, x); err != nil {
				return err
			}
			if x[0] == n {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d ranks hold the shared lock at once, want %d", x[0], n)
			}
		}
		if err := w.Unlock(ctx, 1); err != nil {
			return err
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 && w.Local()[0] != n*times {
			return fmt.Errorf("counter %d, want %d", w.Local()[0], n*times)
		}
		return w.Free(ctx)
	})
}

// TestWinLockHolderLost: rank 1 holds rank 0's lock and leaves without
// unlocking while rank 2 waits for it: rank 2's Lock fails with
// ErrPeerLost naming rank 1 (no hang), and the lock is free afterwards.
func TestWinLockHolderLost(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		w, err := mpi.NewWin[int64](ctx, c, 1)
		if err != nil {
			return err
		}
		switch c.Rank() {
		case 1:
			if err := w.Lock(ctx, 0, true); err != nil {
				return err
			}
			if err := c.Send(ctx, 2, 0, nil); err != nil {
				return err
			}
			if _, _, err := c.Recv(ctx, 0, 0); err != nil { // rank 2 waits now
				return err
			}
			return c.Close() // leaves holding the lock
		case 2:
			if _, _, err := c.Recv(ctx, 1, 0); err != nil {
				return err
			}
			err := w.Lock(ctx, 0, true)
			var re *mpi.RankError
			if !errors.Is(err, mpi.ErrPeerLost) || !errors.As(err, &re) || re.Rank != 1 {
				return fmt.Errorf("Lock whose holder left: %v, want ErrPeerLost naming rank 1", err)
			}
			t.Logf("rank 2: %v", err)
			if err := w.Lock(ctx, 0, true); err != nil {
				return fmt.Errorf("Lock after the holder was lost: %v", err)
			}
			if err := w.Unlock(ctx, 0); err != nil {
				return err
			}
			return c.Send(ctx, 0, 1, nil)
		case 0:
			for mpi.WinWaiting(w) == 0 {
				if ctx.Err() != nil {
					return errors.New("rank 2's Lock never arrived")
				}
				time.Sleep(time.Millisecond)
			}
			if err := c.Send(ctx, 1, 0, nil); err != nil {
				return err
			}
			_, _, err := c.Recv(ctx, 2, 1)
			return err
		}
		return nil
	})
}

// TestWinLockWithdrawn: a Lock whose ctx ends while it waits returns ctx's
// error and leaves nothing behind: once the holder unlocks, the rank locks
// again at once.
func TestWinLockWithdrawn(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, 1)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			if err := w.Lock(ctx, 0, true); err != nil {
				return err
			}
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 1 {
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			err := w.Lock(short, 0, false)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("Lock whose ctx ended: %v, want DeadlineExceeded", err)
			}
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			if err := w.Unlock(ctx, 0); err != nil {
				return err
			}
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 1 {
			if err := w.Lock(ctx, 0, true); err != nil {
				return err
			}
			if err := w.Unlock(ctx, 0); err != nil {
				return err
			}
		}
		return w.Free(ctx)
	})
}

// TestWinBadInput: every misuse is one error naming the problem, on every
// rank where it is collective, never a hang or a panic.
func TestWinBadInput(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int32](ctx, c, 4+c.Rank())
		if err != nil {
			return err
		}
		want := func(what string, err error, is error, parts ...string) error {
			if err == nil {
				return fmt.Errorf("%s: no error", what)
			}
			if is != nil && !errors.Is(err, is) {
				return fmt.Errorf("%s: %v, want %v", what, err, is)
			}
			for _, p := range parts {
				if !strings.Contains(err.Error(), p) {
					return fmt.Errorf("%s: %q does not say %q", what, err, p)
				}
			}
			return nil
		}
		buf := make([]int32, 3)
		checks := []error{
			want("Get past the end", w.Get(ctx, 2, 4, buf), mpi.ErrWinRange, "offset 4", "rank 2", "6 elements"),
			want("Put at a negative offset", w.Put(ctx, 0, -1, buf), mpi.ErrWinRange, "offset -1", "rank 0", "4 elements"),
			want("Get from rank 3", w.Get(ctx, 3, 0, buf), mpi.ErrRank, "rank 3"),
			want("Unlock without Lock", w.Unlock(ctx, 1), nil, "without Lock"),
		}
		var err2 error
		_, err2 = w.FetchAndOp(ctx, 0, 9, 1, mpi.AccSum)
		checks = append(checks, want("FetchAndOp past the end", err2, mpi.ErrWinRange, "offset 9", "4 elements"))
		if err := w.Lock(ctx, 0, false); err != nil {
			return err
		}
		checks = append(checks, want("Lock twice", w.Lock(ctx, 0, true), nil, "rank 0 already"))
		if err := w.Unlock(ctx, 0); err != nil {
			return err
		}
		cw, err := mpi.NewWin[complex128](ctx, c, 1)
		if err != nil {
			return err
		}
		checks = append(checks, want("Max of complex", cw.Accumulate(ctx, 0, 0, []complex128{1}, mpi.AccMax), nil, "AccMax", "complex128"))
		fw, err := mpi.NewWin[float64](ctx, c, 1)
		if err != nil {
			return err
		}
		_, err2 = fw.FetchAndOp(ctx, 0, 0, 1, mpi.AccBxor)
		checks = append(checks, want("Bxor of floats", err2, nil, "AccBxor", "integers"))
		for _, x := range []interface{ Free(context.Context) error }{w, cw, fw} {
			if err := x.Free(ctx); err != nil {
				return err
			}
		}
		checks = append(checks, want("Get after Free", w.Get(ctx, 0, 0, buf[:1]), mpi.ErrWinFreed),
			want("Fence after Free", w.Fence(ctx), mpi.ErrWinFreed))
		// Mismatched windows: another element type on rank 1, a negative
		// size on rank 2: every rank fails, naming it.
		var errT, errN error
		if c.Rank() == 1 {
			_, errT = mpi.NewWin[int64](ctx, c, 1)
		} else {
			_, errT = mpi.NewWin[int32](ctx, c, 1)
		}
		checks = append(checks, want("NewWin of int64 on rank 1", errT, nil, "rank 1", "int64", "int32"))
		_, errN = mpi.NewWin[int32](ctx, c, 1-c.Rank())
		checks = append(checks, want("NewWin of -1 elements on rank 2", errN, nil, "rank 2", "negative"))
		return errors.Join(checks...)
	})
}
