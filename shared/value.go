package shared

import (
	"context"
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// A Value is one number shared by the ranks of a communicator, kept by
// rank 0: multiprocessing's Value. It is safe for use by many goroutines.
type Value[T mpi.Number] struct {
	w *mpi.Win[T]
}

// NewValue makes a Value on c, starting at zero. It is collective.
func NewValue[T mpi.Number](ctx context.Context, c *mpi.Comm) (*Value[T], error) {
	if c == nil {
		return nil, errors.New("shared: NewValue: nil communicator")
	}
	n := 0
	if c.Rank() == 0 {
		n = 1
	}
	w, err := mpi.NewWin[T](ctx, c, n)
	if err != nil {
		return nil, fmt.Errorf("shared: NewValue: %w", err)
	}
	return &Value[T]{w: w}, nil
}

// Load returns the value.
func (v *Value[T]) Load(ctx context.Context) (T, error) {
	var x [1]T
	if err := v.w.Get(ctx, 0, 0, x[:]); err != nil {
		return x[0], fmt.Errorf("shared: Value.Load: %w", err)
	}
	return x[0], nil
}

// Store sets the value to x.
func (v *Value[T]) Store(ctx context.Context, x T) error {
	if err := v.w.Put(ctx, 0, 0, []T{x}); err != nil {
		return fmt.Errorf("shared: Value.Store: %w", err)
	}
	return nil
}

// Add adds d to the value atomically, and returns the value before.
func (v *Value[T]) Add(ctx context.Context, d T) (T, error) {
	old, err := v.w.FetchAndOp(ctx, 0, 0, d, mpi.AccSum)
	if err != nil {
		return old, fmt.Errorf("shared: Value.Add: %w", err)
	}
	return old, nil
}

// CompareAndSwap sets the value to new if it is old (by ==), atomically,
// and reports whether it did.
func (v *Value[T]) CompareAndSwap(ctx context.Context, old, new T) (bool, error) {
	found, err := v.w.CompareAndSwap(ctx, 0, 0, old, new)
	if err != nil {
		return false, fmt.Errorf("shared: Value.CompareAndSwap: %w", err)
	}
	return found == old, nil
}

// Free releases the Value. It is collective: every rank calls it once no
// rank uses the Value any more; every call after returns an error wrapping
// mpi.ErrWinFreed.
func (v *Value[T]) Free(ctx context.Context) error {
	if err := v.w.Free(ctx); err != nil {
		return fmt.Errorf("shared: Value.Free: %w", err)
	}
	return nil
}
