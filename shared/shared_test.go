package shared_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/shared"
)

// TestValueAddDistinct: 8 ranks each Add 1 10,000 times to one Value: the
// final value is exactly 80,000 and the old values returned are all
// distinct (each Add saw the Value alone). On the in-memory network: over
// the in-process NATS server, with the race detector, on 2 loaded cores,
// the 80,000 round trips take 80 s instead of 20.
func TestValueAddDistinct(t *testing.T) {
	const n, times = 8, 10000
	mpitest.NewNet(mpitest.Faults{Seed: 1}).Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[int64](ctx, c)
		if err != nil {
			return err
		}
		olds := make([]int64, times)
		for i := range olds {
			if olds[i], err = v.Add(ctx, 1); err != nil {
				return err
			}
		}
		all, err := collectives.Gather(ctx, c, 0, olds)
		if err != nil {
			return err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		final, err := v.Load(ctx)
		if err != nil {
			return err
		}
		if final != n*times {
			return fmt.Errorf("final value %d, want %d", final, n*times)
		}
		if c.Rank() == 0 {
			seen := make([]bool, n*times)
			for _, o := range all {
				if o < 0 || o >= n*times || seen[o] {
					return fmt.Errorf("old value %d twice or out of range", o)
				}
				seen[o] = true
			}
		}
		return v.Free(ctx)
	})
}

// TestValueStoreCAS: Store, Load and CompareAndSwap: of 5 ranks trying to
// swap 7 for their rank, exactly one wins.
func TestValueStoreCAS(t *testing.T) {
	mpitest.Run(t, 5, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[int32](ctx, c)
		if err != nil {
			return err
		}
		if c.Rank() == 3 {
			if err := v.Store(ctx, 7); err != nil {
				return err
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		won, err := v.CompareAndSwap(ctx, 7, int32(100+c.Rank()))
		if err != nil {
			return err
		}
		w := int64(0)
		if won {
			w = 1
		}
		wins, err := collectives.AllreduceValue(ctx, c, w, collectives.Sum)
		if err != nil {
			return err
		}
		x, err := v.Load(ctx)
		switch {
		case err != nil:
			return err
		case wins != 1:
			return fmt.Errorf("%d ranks won the swap, want 1", wins)
		case won && x != int32(100+c.Rank()):
			return fmt.Errorf("won, but the value is %d", x)
		}
		return v.Free(ctx)
	})
}

// TestArrayHistogram: 4 ranks add to a 10-bin histogram in an Array of 10
// elements over 4 ranks (blocks 3, 3, 2, 2), then read it whole and in
// ranges across the blocks; WriteRange across blocks reads back.
func TestArrayHistogram(t *testing.T) {
	const n, bins, samples = 4, 10, 200
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[int64](ctx, c, bins)
		if err != nil {
			return err
		}
		if a.Len() != bins {
			return fmt.Errorf("Len %d, want %d", a.Len(), bins)
		}
		for s := range samples {
			if _, err := a.Add(ctx, (s*7+c.Rank())%bins, 1); err != nil {
				return err
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		want := make([]int64, bins)
		for r := range n {
			for s := range samples {
				want[(s*7+r)%bins]++
			}
		}
		got, err := a.ReadRange(ctx, 0, bins)
		if err != nil {
			return err
		}
		for i := range bins {
			x, err := a.At(ctx, i)
			if err != nil {
				return err
			}
			if got[i] != want[i] || x != want[i] {
				return fmt.Errorf("bin %d: ReadRange %d, At %d, want %d", i, got[i], x, want[i])
			}
		}
		mid, err := a.ReadRange(ctx, 2, 7)
		if err != nil {
			return err
		}
		if fmt.Sprint(mid) != fmt.Sprint(want[2:7]) {
			return fmt.Errorf("ReadRange(2, 7) = %v, want %v", mid, want[2:7])
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 1 {
			if err := a.WriteRange(ctx, 1, []int64{-1, -2, -3, -4, -5, -6, -7, -8}); err != nil {
				return err
			}
			if err := a.Set(ctx, 9, 99); err != nil {
				return err
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		all, err := a.ReadRange(ctx, 0, bins)
		if err != nil {
			return err
		}
		if fmt.Sprint(all[1:]) != "[-1 -2 -3 -4 -5 -6 -7 -8 99]" || all[0] != want[0] {
			return fmt.Errorf("after WriteRange: %v", all)
		}
		return a.Free(ctx)
	})
}

// TestArrayShort: fewer elements than ranks: some ranks keep none.
func TestArrayShort(t *testing.T) {
	mpitest.Run(t, 5, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[float64](ctx, c, 3)
		if err != nil {
			return err
		}
		if err := a.Set(ctx, c.Rank()%3, 1); err != nil {
			return err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		all, err := a.ReadRange(ctx, 0, 3)
		if err != nil {
			return err
		}
		if fmt.Sprint(all) != "[1 1 1]" {
			return fmt.Errorf("got %v", all)
		}
		return a.Free(ctx)
	})
}

// TestMutexCounter: every rank increments a Value with a Load and a Store
// (not atomic together) under the Mutex, from two goroutines each: no
// increment is lost.
func TestMutexCounter(t *testing.T) {
	const n, times = 4, 25
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		m, err := shared.NewMutex(ctx, c)
		if err != nil {
			return err
		}
		v, err := shared.NewValue[int64](ctx, c)
		if err != nil {
			return err
		}
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				for range times {
					if err := m.Lock(ctx); err != nil {
						errs <- err
						return
					}
					x, err := v.Load(ctx)
					if err == nil {
						err = v.Store(ctx, x+1)
					}
					if uerr := m.Unlock(ctx); err == nil {
						err = uerr
					}
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		if err := errors.Join(<-errs, <-errs); err != nil {
			return err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		x, err := v.Load(ctx)
		if err != nil {
			return err
		}
		if x != n*2*times {
			return fmt.Errorf("counter %d, want %d", x, n*2*times)
		}
		if err := m.Unlock(ctx); err == nil || !strings.Contains(err.Error(), "without Lock") {
			return fmt.Errorf("Unlock without Lock: %v", err)
		}
		return errors.Join(v.Free(ctx), m.Free(ctx))
	})
}

// TestSharedBadInput: an index out of range, a range out of range,
// different lengths to NewArray, use after Free: one error each, naming
// the problem.
func TestSharedBadInput(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		want := func(what string, err error, parts ...string) error {
			if err == nil {
				return fmt.Errorf("%s: no error", what)
			}
			for _, p := range parts {
				if !strings.Contains(err.Error(), p) {
					return fmt.Errorf("%s: %q does not say %q", what, err, p)
				}
			}
			return nil
		}
		a, err := shared.NewArray[int32](ctx, c, 7)
		if err != nil {
			return err
		}
		_, errAt := a.At(ctx, 7)
		_, errRange := a.ReadRange(ctx, 5, 9)
		errWrite := a.WriteRange(ctx, 6, []int32{1, 2})
		if err := a.Free(ctx); err != nil {
			return err
		}
		_, errFreed := a.At(ctx, 0)
		_, errLen := shared.NewArray[int32](ctx, c, 4+c.Rank()%2)
		v, err := shared.NewValue[float64](ctx, c)
		if err != nil {
			return err
		}
		if err := v.Free(ctx); err != nil {
			return err
		}
		_, errV := v.Add(ctx, 1)
		checks := []error{
			want("At(7)", errAt, "index 7 out of range [0, 7)"),
			want("ReadRange(5, 9)", errRange, "[5, 9) out of range [0, 7)"),
			want("WriteRange(6, 2 elements)", errWrite, "2 elements at 6 out of range"),
			want("At after Free", errFreed, "window freed"),
			want("NewArray of 4 and 5", errLen, "different lengths (4 and 5)"),
			want("Add after Free", errV, "Value.Add", "window freed"),
		}
		if !errors.Is(errFreed, mpi.ErrWinFreed) {
			checks = append(checks, fmt.Errorf("At after Free: %v, want ErrWinFreed", errFreed))
		}
		return errors.Join(checks...)
	})
}
