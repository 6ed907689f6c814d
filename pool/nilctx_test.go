package pool_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// TestNilContext: Map, MapUnordered, NewQueue and the Queue's Put and Get given
// a nil ctx return an error wrapping mpi.ErrNilContext on every rank, and
// the next call works.
func TestNilContext(t *testing.T) {
	var noCtx context.Context
	double := func(_ context.Context, x int) (int, error) { return 2 * x, nil }
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		if _, err := pool.Map(noCtx, c, []int{1, 2, 3}, double); !errors.Is(err, mpi.ErrNilContext) {
			return fmt.Errorf("Map with a nil ctx: %v, want an error wrapping mpi.ErrNilContext", err)
		}
		each := func(int, int) error { return nil }
		if err := pool.MapUnordered(noCtx, c, []int{1, 2, 3}, double, each); !errors.Is(err, mpi.ErrNilContext) {
			return fmt.Errorf("MapUnordered with a nil ctx: %v, want an error wrapping mpi.ErrNilContext", err)
		}
		if _, err := pool.NewQueue[int](noCtx, c); !errors.Is(err, mpi.ErrNilContext) {
			return fmt.Errorf("NewQueue with a nil ctx: %v, want an error wrapping mpi.ErrNilContext", err)
		}
		q, err := pool.NewQueue[int](ctx, c)
		if err != nil {
			return err
		}
		for name, call := range map[string]func() error{
			"Put": func() error { return q.Put(noCtx, 1) },
			"Get": func() error { _, err := q.Get(noCtx); return err },
		} {
			if err := call(); !errors.Is(err, mpi.ErrNilContext) {
				return fmt.Errorf("Queue.%s with a nil ctx: %v, want an error wrapping mpi.ErrNilContext", name, err)
			}
		}
		if err := q.Put(ctx, c.Rank()); err != nil {
			return fmt.Errorf("Put after a nil ctx: %v", err)
		}
		if _, err := q.Get(ctx); err != nil {
			return fmt.Errorf("Get after a nil ctx: %v", err)
		}
		if err := q.Close(); err != nil {
			return err
		}
		got, err := pool.Map(ctx, c, []int{1, 2, 3}, double)
		if err != nil || (c.Rank() == 0 && !slices.Equal(got, []int{2, 4, 6})) {
			return fmt.Errorf("Map after a nil ctx: %v, %v", got, err)
		}
		return nil
	})
}
