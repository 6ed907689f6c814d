package shared

import (
	"context"
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

// An Array is n numbers shared by the ranks of a communicator:
// multiprocessing's Array. Its elements lie in contiguous blocks over the
// ranks, as collectives.Scatter cuts them (lengths differ by at most one,
// lower ranks longer), each rank serving its block. It is safe for use by
// many goroutines.
type Array[T mpi.Number] struct {
	w           *mpi.Win[T]
	n           int
	base, extra int // each rank keeps base elements, the first extra ranks one more
}

// NewArray makes an Array of n elements on c, zeroed. It is collective:
// every rank passes the same n, or every rank gets an error naming both.
func NewArray[T mpi.Number](ctx context.Context, c *mpi.Comm, n int) (*Array[T], error) {
	if c == nil {
		return nil, errors.New("shared: NewArray: nil communicator")
	}
	agreed, err := collectives.Allreduce(ctx, c, []int64{int64(n), -int64(n)}, collectives.Max)
	if err != nil {
		return nil, fmt.Errorf("shared: NewArray: %w", err)
	}
	switch {
	case agreed[0] != -agreed[1]:
		return nil, fmt.Errorf("shared: NewArray: ranks pass different lengths (%d and %d)", -agreed[1], agreed[0])
	case n < 0:
		return nil, fmt.Errorf("shared: NewArray: negative length %d", n)
	}
	a := &Array[T]{n: n, base: n / c.Size(), extra: n % c.Size()}
	lo, hi := a.block(c.Rank())
	if a.w, err = mpi.NewWin[T](ctx, c, hi-lo); err != nil {
		return nil, fmt.Errorf("shared: NewArray: %w", err)
	}
	return a, nil
}

// block returns the elements [lo, hi) that rank r keeps.
func (a *Array[T]) block(r int) (lo, hi int) {
	lo = r*a.base + min(r, a.extra)
	hi = lo + a.base
	if r < a.extra {
		hi++
	}
	return lo, hi
}

// owner returns the rank that keeps element i, and i's offset there.
func (a *Array[T]) owner(i int) (rank, off int) {
	if i < a.extra*(a.base+1) {
		return i / (a.base + 1), i % (a.base + 1)
	}
	big := a.extra * (a.base + 1)
	return a.extra + (i-big)/a.base, (i - big) % a.base
}

// Len returns the number of elements.
func (a *Array[T]) Len() int { return a.n }

func (a *Array[T]) index(i int) (rank, off int, err error) {
	if i < 0 || i >= a.n {
		return 0, 0, fmt.Errorf("index %d out of range [0, %d)", i, a.n)
	}
	rank, off = a.owner(i)
	return rank, off, nil
}

// At returns element i.
func (a *Array[T]) At(ctx context.Context, i int) (T, error) {
	var x [1]T
	r, off, err := a.index(i)
	if err == nil {
		err = a.w.Get(ctx, r, off, x[:])
	}
	if err != nil {
		return x[0], fmt.Errorf("shared: Array.At: %w", err)
	}
	return x[0], nil
}

// Set sets element i to x.
func (a *Array[T]) Set(ctx context.Context, i int, x T) error {
	r, off, err := a.index(i)
	if err == nil {
		err = a.w.Put(ctx, r, off, []T{x})
	}
	if err != nil {
		return fmt.Errorf("shared: Array.Set: %w", err)
	}
	return nil
}

// Add adds d to element i atomically, and returns the element's value
// before.
func (a *Array[T]) Add(ctx context.Context, i int, d T) (T, error) {
	r, off, err := a.index(i)
	var old T
	if err == nil {
		old, err = a.w.FetchAndOp(ctx, r, off, d, mpi.AccSum)
	}
	if err != nil {
		return old, fmt.Errorf("shared: Array.Add: %w", err)
	}
	return old, nil
}

// ReadRange returns elements [lo, hi). Each rank's part of the range is
// read atomically, not the range as a whole.
func (a *Array[T]) ReadRange(ctx context.Context, lo, hi int) ([]T, error) {
	if lo < 0 || hi < lo || hi > a.n {
		return nil, fmt.Errorf("shared: Array.ReadRange: [%d, %d) out of range [0, %d)", lo, hi, a.n)
	}
	out := make([]T, hi-lo)
	err := a.span(lo, hi, func(r, off, at, k int) error {
		return a.w.Get(ctx, r, off, out[at-lo:at-lo+k])
	})
	if err != nil {
		return nil, fmt.Errorf("shared: Array.ReadRange: %w", err)
	}
	return out, nil
}

// WriteRange sets elements [lo, lo+len(data)) to data. Each rank's part of
// the range is written atomically, not the range as a whole.
func (a *Array[T]) WriteRange(ctx context.Context, lo int, data []T) error {
	if lo < 0 || lo > a.n || len(data) > a.n-lo {
		return fmt.Errorf("shared: Array.WriteRange: %d elements at %d out of range [0, %d)", len(data), lo, a.n)
	}
	err := a.span(lo, lo+len(data), func(r, off, at, k int) error {
		return a.w.Put(ctx, r, off, data[at-lo:at-lo+k])
	})
	if err != nil {
		return fmt.Errorf("shared: Array.WriteRange: %w", err)
	}
	return nil
}

// span calls f for each rank's part of [lo, hi): k elements from element
// at, offset off on rank r.
func (a *Array[T]) span(lo, hi int, f func(r, off, at, k int) error) error {
	for at := lo; at < hi; {
		r, off := a.owner(at)
		_, end := a.block(r)
		k := min(hi, end) - at
		if err := f(r, off, at, k); err != nil {
			return err
		}
		at += k
	}
	return nil
}

// Free releases the Array. It is collective: every rank calls it once no
// rank uses the Array any more; every call after returns an error
// wrapping mpi.ErrWinFreed.
func (a *Array[T]) Free(ctx context.Context) error {
	if err := a.w.Free(ctx); err != nil {
		return fmt.Errorf("shared: Array.Free: %w", err)
	}
	return nil
}
