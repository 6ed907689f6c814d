package mpi_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// Every rank exposes a window of its own size; rank 0 reads the last
// element of each.
func ExampleNewWin() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, c.Rank()+1) // rank r exposes r+1 elements
		if err != nil {
			return err
		}
		w.Local()[c.Rank()] = int64(10 * c.Rank()) // before the Fence: no one else touches it
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			for r := range c.Size() {
				x := make([]int64, 1)
				if err := w.Get(ctx, r, r, x); err != nil {
					return err
				}
				fmt.Printf("rank %d, element %d: %d\n", r, r, x[0])
			}
		}
		return w.Free(ctx)
	})
	// Output:
	// rank 0, element 0: 0
	// rank 1, element 1: 10
	// rank 2, element 2: 20
}

// Each rank writes its rank into its own slot of rank 0's window.
func ExampleWin_Put() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		n := 0
		if c.Rank() == 0 {
			n = c.Size()
		}
		w, err := mpi.NewWin[int32](ctx, c, n)
		if err != nil {
			return err
		}
		if err := w.Put(ctx, 0, c.Rank(), []int32{int32(c.Rank() * c.Rank())}); err != nil {
			return err
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(w.Local())
		}
		return w.Free(ctx)
	})
	// Output: [0 1 4 9]
}

// Rank 1 reads rank 0's window while rank 0 is busy elsewhere: the window
// is served in the background.
func ExampleWin_Get() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[float64](ctx, c, 3)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			copy(w.Local(), []float64{1.5, 2.5, 3.5})
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 1 {
			buf := make([]float64, 2)
			if err := w.Get(ctx, 0, 1, buf); err != nil {
				return err
			}
			fmt.Println(buf)
		}
		return w.Free(ctx)
	})
	// Output: [2.5 3.5]
}

// Every rank adds into overlapping ranges of rank 0's window.
func ExampleWin_Accumulate() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, 6)
		if err != nil {
			return err
		}
		// Rank r adds 1 to elements r, r+1, r+2.
		if err := w.Accumulate(ctx, 0, c.Rank(), []int64{1, 1, 1}, mpi.AccSum); err != nil {
			return err
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(w.Local())
		}
		return w.Free(ctx)
	})
	// Output: [1 2 3 3 2 1]
}

// A ticket counter: each rank draws a distinct ticket.
func ExampleWin_FetchAndOp() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, 1)
		if err != nil {
			return err
		}
		ticket, err := w.FetchAndOp(ctx, 0, 0, 1, mpi.AccSum)
		if err != nil {
			return err
		}
		if c.Rank() != 0 {
			if err := mpi.SendValue(ctx, c, 0, 0, ticket); err != nil {
				return err
			}
		} else {
			seen := map[int64]bool{ticket: true}
			for range c.Size() - 1 {
				t, _, err := mpi.RecvValue[int64](ctx, c, mpi.AnySource, 0)
				if err != nil {
					return err
				}
				seen[t] = true
			}
			fmt.Println(len(seen), "distinct tickets")
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("counter", w.Local()[0])
		}
		return w.Free(ctx)
	})
	// Output:
	// 4 distinct tickets
	// counter 4
}

// Of all ranks trying to claim a free slot (-1), exactly one wins.
func ExampleWin_CompareAndSwap() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int32](ctx, c, 1)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			w.Local()[0] = -1
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		found, err := w.CompareAndSwap(ctx, 0, 0, -1, int32(c.Rank()))
		if err != nil {
			return err
		}
		won := int64(0)
		if found == -1 {
			won = 1
		}
		if c.Rank() != 0 {
			if err := mpi.SendValue(ctx, c, 0, 0, won); err != nil {
				return err
			}
		} else {
			for range c.Size() - 1 {
				x, _, err := mpi.RecvValue[int64](ctx, c, mpi.AnySource, 0)
				if err != nil {
					return err
				}
				won += x
			}
			fmt.Println("winners:", won)
		}
		return w.Free(ctx)
	})
	// Output: winners: 1
}

// Fence separates epochs: after it, what every rank put is in place.
func ExampleWin_Fence() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int32](ctx, c, c.Size())
		if err != nil {
			return err
		}
		for r := range c.Size() { // my rank into slot Rank() of every window
			if err := w.Put(ctx, r, c.Rank(), []int32{int32(c.Rank())}); err != nil {
				return err
			}
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 2 {
			fmt.Println(w.Local())
		}
		return w.Free(ctx)
	})
	// Output: [0 1 2]
}

// An exclusive Lock makes a read-modify-write of several calls atomic.
func ExampleWin_Lock() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[float64](ctx, c, 2)
		if err != nil {
			return err
		}
		for range 5 {
			if err := w.Lock(ctx, 0, true); err != nil {
				return err
			}
			xy := make([]float64, 2)
			if err := w.Get(ctx, 0, 0, xy); err != nil {
				return err
			}
			if err := w.Put(ctx, 0, 0, []float64{xy[0] + 1, xy[1] + xy[0]}); err != nil {
				return err
			}
			if err := w.Unlock(ctx, 0); err != nil {
				return err
			}
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(w.Local()) // 20 increments; the sum 0+1+...+19
		}
		return w.Free(ctx)
	})
	// Output: [20 190]
}

// Unlock without a Lock is an error.
func ExampleWin_Unlock() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, 1)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(w.Unlock(ctx, 0))
			if err := w.Lock(ctx, 0, false); err != nil {
				return err
			}
			fmt.Println(w.Unlock(ctx, 0))
		}
		return w.Free(ctx)
	})
	// Output:
	// mpi: Unlock: this rank holds no lock on rank 0 (Unlock without Lock)
	// <nil>
}

// Flush waits for the calls other goroutines of the rank have in flight.
func ExampleWin_Flush() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, 1)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			done := make(chan error, 1)
			go func() { done <- w.Accumulate(ctx, 0, 0, []int64{5}, mpi.AccSum) }()
			if err := errors.Join(<-done, w.Flush(ctx, 0)); err != nil {
				return err
			}
			x := make([]int64, 1)
			if err := w.Get(ctx, 0, 0, x); err != nil {
				return err
			}
			fmt.Println(x[0])
		}
		return w.Free(ctx)
	})
	// Output: 5
}

// Local is this rank's memory: read it after a Fence.
func ExampleWin_Local() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[uint8](ctx, c, 4)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			if err := w.Accumulate(ctx, 0, 0, []uint8{0xF0, 0x0F, 0xFF, 0}, mpi.AccBor); err != nil {
				return err
			}
		}
		if err := w.Fence(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Printf("%x\n", w.Local())
		}
		return w.Free(ctx)
	})
	// Output: f00fff00
}

// After Free, every call is an error.
func ExampleWin_Free() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		w, err := mpi.NewWin[int64](ctx, c, 1)
		if err != nil {
			return err
		}
		if err := w.Free(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(errors.Is(w.Put(ctx, 1, 0, []int64{1}), mpi.ErrWinFreed))
		}
		return nil
	})
	// Output: true
}
