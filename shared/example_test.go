package shared_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/shared"
)

// A counter every rank adds to: multiprocessing's Value('q', 0).
func ExampleNewValue() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[int64](ctx, c)
		if err != nil {
			return err
		}
		if _, err := v.Add(ctx, int64(c.Rank()+1)); err != nil {
			return err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			x, err := v.Load(ctx)
			if err != nil {
				return err
			}
			fmt.Println("1+2+3+4 =", x)
		}
		return v.Free(ctx)
	})
	// Output: 1+2+3+4 = 10
}

// Load reads the value, wherever it is kept.
func ExampleValue_Load() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[float64](ctx, c)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			x, err := v.Load(ctx)
			if err != nil {
				return err
			}
			fmt.Println("a new Value is", x)
		}
		return v.Free(ctx)
	})
	// Output: a new Value is 0
}

// Store sets the value; the others see it after a barrier.
func ExampleValue_Store() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[float64](ctx, c)
		if err != nil {
			return err
		}
		if c.Rank() == 2 {
			if err := v.Store(ctx, 2.75); err != nil {
				return err
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 1 {
			x, err := v.Load(ctx)
			if err != nil {
				return err
			}
			fmt.Println(x)
		}
		return v.Free(ctx)
	})
	// Output: 2.75
}

// Add returns the value before, so that concurrent Adds hand out distinct
// numbers.
func ExampleValue_Add() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[int32](ctx, c)
		if err != nil {
			return err
		}
		old, err := v.Add(ctx, 1)
		if err != nil {
			return err
		}
		olds, err := collectives.GatherValues(ctx, c, 0, old)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			seen := map[int32]bool{}
			for _, o := range olds {
				seen[o] = true
			}
			fmt.Println(len(seen), "distinct old values")
		}
		return v.Free(ctx)
	})
	// Output: 4 distinct old values
}

// Of the ranks that try to swap 0 for their rank, one succeeds.
func ExampleValue_CompareAndSwap() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[int64](ctx, c)
		if err != nil {
			return err
		}
		won, err := v.CompareAndSwap(ctx, 0, int64(c.Rank()+1))
		if err != nil {
			return err
		}
		n := 0
		if won {
			n = 1
		}
		wins, err := collectives.ReduceValue(ctx, c, 0, n, collectives.Sum)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(wins, "rank won")
		}
		return v.Free(ctx)
	})
	// Output: 1 rank won
}

// After Free, a call is an error wrapping mpi.ErrWinFreed.
func ExampleValue_Free() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		v, err := shared.NewValue[int64](ctx, c)
		if err != nil {
			return err
		}
		if err := v.Free(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			_, err := v.Load(ctx)
			fmt.Println(errors.Is(err, mpi.ErrWinFreed))
		}
		return nil
	})
	// Output: true
}

// A histogram in an Array of 5 bins over 3 ranks: multiprocessing's
// Array('q', 5).
func ExampleNewArray() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[int64](ctx, c, 5)
		if err != nil {
			return err
		}
		for x := range 10 {
			if _, err := a.Add(ctx, (x+c.Rank())%5, 1); err != nil {
				return err
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			h, err := a.ReadRange(ctx, 0, a.Len())
			if err != nil {
				return err
			}
			fmt.Println(h)
		}
		return a.Free(ctx)
	})
	// Output: [6 6 6 6 6]
}

// Len is the number of elements, the same on every rank.
func ExampleArray_Len() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[float32](ctx, c, 7)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(a.Len())
		}
		return a.Free(ctx)
	})
	// Output: 7
}

// At reads one element; an index out of range is an error.
func ExampleArray_At() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[int32](ctx, c, 4)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			x, err := a.At(ctx, 3)
			fmt.Println(x, err)
			_, err = a.At(ctx, 4)
			fmt.Println(err)
		}
		return a.Free(ctx)
	})
	// Output:
	// 0 <nil>
	// shared: Array.At: index 4 out of range [0, 4)
}

// Set writes one element, on whichever rank keeps it.
func ExampleArray_Set() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[int32](ctx, c, 3)
		if err != nil {
			return err
		}
		if err := a.Set(ctx, 2-c.Rank(), int32(c.Rank())); err != nil {
			return err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			xs, err := a.ReadRange(ctx, 0, 3)
			if err != nil {
				return err
			}
			fmt.Println(xs)
		}
		return a.Free(ctx)
	})
	// Output: [2 1 0]
}

// Add is atomic: every rank's additions count.
func ExampleArray_Add() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[float64](ctx, c, 2)
		if err != nil {
			return err
		}
		if _, err := a.Add(ctx, 1, 0.5); err != nil {
			return err
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 3 {
			x, err := a.At(ctx, 1)
			if err != nil {
				return err
			}
			fmt.Println(x)
		}
		return a.Free(ctx)
	})
	// Output: 2
}

// ReadRange reads across the blocks of several ranks.
func ExampleArray_ReadRange() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[int64](ctx, c, 9)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			if err := a.WriteRange(ctx, 0, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
				return err
			}
			xs, err := a.ReadRange(ctx, 2, 7) // ranks 0, 1 and 2 keep 3 each
			if err != nil {
				return err
			}
			fmt.Println(xs)
		}
		return a.Free(ctx)
	})
	// Output: [2 3 4 5 6]
}

// WriteRange writes across blocks; each rank's part is applied at once.
func ExampleArray_WriteRange() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[uint8](ctx, c, 6)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			if err := a.WriteRange(ctx, 1, []uint8{7, 7, 7, 7}); err != nil {
				return err
			}
			xs, err := a.ReadRange(ctx, 0, 6)
			if err != nil {
				return err
			}
			fmt.Println(xs)
		}
		return a.Free(ctx)
	})
	// Output: [0 7 7 7 7 0]
}

// Free releases the Array on every rank.
func ExampleArray_Free() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		a, err := shared.NewArray[int64](ctx, c, 4)
		if err != nil {
			return err
		}
		if err := a.Free(ctx); err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(errors.Is(a.Set(ctx, 0, 1), mpi.ErrWinFreed))
		}
		return nil
	})
	// Output: true
}

// A lock around a read-modify-write of several calls: multiprocessing's
// Lock.
func ExampleNewMutex() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		m, err := shared.NewMutex(ctx, c)
		if err != nil {
			return err
		}
		a, err := shared.NewArray[int64](ctx, c, 2) // a pair kept consistent under the lock
		if err != nil {
			return err
		}
		for range 3 {
			if err := m.Lock(ctx); err != nil {
				return err
			}
			xy, err := a.ReadRange(ctx, 0, 2)
			if err == nil {
				err = a.WriteRange(ctx, 0, []int64{xy[0] + 1, xy[1] + 2})
			}
			if err := errors.Join(err, m.Unlock(ctx)); err != nil {
				return err
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			xy, err := a.ReadRange(ctx, 0, 2)
			if err != nil {
				return err
			}
			fmt.Println(xy)
		}
		return errors.Join(a.Free(ctx), m.Free(ctx))
	})
	// Output: [12 24]
}

// Lock waits until the lock is free; a ctx that ends first gives up.
func ExampleMutex_Lock() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		m, err := shared.NewMutex(ctx, c)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			if err := m.Lock(ctx); err != nil {
				return err
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 1 {
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			err := m.Lock(short)
			cancel()
			fmt.Println("held by rank 0:", errors.Is(err, context.DeadlineExceeded))
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			if err := m.Unlock(ctx); err != nil {
				return err
			}
		}
		return m.Free(ctx)
	})
	// Output: held by rank 0: true
}

// Unlock of a Mutex this rank does not hold is an error.
func ExampleMutex_Unlock() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		m, err := shared.NewMutex(ctx, c)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(m.Unlock(ctx))
		}
		return m.Free(ctx)
	})
	// Output: shared: Mutex.Unlock: this rank does not hold the lock (Unlock without Lock)
}

// Free releases the Mutex on every rank.
func ExampleMutex_Free() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		m, err := shared.NewMutex(ctx, c)
		if err != nil {
			return err
		}
		if err := m.Free(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(errors.Is(m.Lock(ctx), mpi.ErrWinFreed))
		}
		return nil
	})
	// Output: true
}
