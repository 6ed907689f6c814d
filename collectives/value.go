package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// One value per rank, as mpi4py's lower-case bcast, reduce, allreduce,
// gather, allgather and scatter: a rank passes and gets a T, not a []T. Each
// is a thin layer over the slice collective of the same name, with its
// algorithms, checks and errors (a mismatch names the collective under it:
// Bcast, Reduce, Allreduce, Gather, Allgather), except ScatterValues, which
// checks that root has one value per rank.

// BcastValue returns root's v on every rank (as a copy on root too, for a
// type that holds memory). Only root's v is read. It is Bcast of one
// element, with Bcast's blocking and errors.
func BcastValue[T any](ctx context.Context, c *mpi.Comm, root int, v T) (T, error) {
	out, err := Bcast(ctx, c, root, []T{v})
	return one(out, err, "Bcast", c)
}

// ReduceValue combines every rank's v with op and returns the result on
// root, and T's zero value on the other ranks. It is Reduce of one element,
// with Reduce's blocking and errors; it panics if op is nil.
//
//	total, err := collectives.ReduceValue(ctx, world, 0, local, collectives.Sum)
func ReduceValue[T mpi.Number](ctx context.Context, c *mpi.Comm, root int, v T, op Op[T]) (T, error) {
	out, err := Reduce(ctx, c, root, []T{v}, op)
	if err == nil && out == nil {
		var zero T
		return zero, nil // not root
	}
	return one(out, err, "Reduce", c)
}

// AllreduceValue combines every rank's v with op and returns the result on
// every rank, the same to the last bit everywhere. It is Allreduce of one
// element, with Allreduce's blocking and errors; it panics if op is nil.
//
//	pi, err := collectives.AllreduceValue(ctx, world, mine, collectives.Sum)
func AllreduceValue[T mpi.Number](ctx context.Context, c *mpi.Comm, v T, op Op[T]) (T, error) {
	out, err := Allreduce(ctx, c, []T{v}, op)
	return one(out, err, "Allreduce", c)
}

// GatherValues returns, on root, every rank's v in rank order (Size()
// values), and nil on the other ranks. It is Gather of one element per
// rank, with Gather's blocking and errors.
func GatherValues[T any](ctx context.Context, c *mpi.Comm, root int, v T) ([]T, error) {
	out, err := Gather(ctx, c, root, []T{v})
	if err == nil && c.Rank() == root && len(out) != c.Size() {
		return nil, fmt.Errorf("collectives: Gather: %d values for %d ranks on root %d", len(out), c.Size(), root)
	}
	return out, err
}

// AllgatherValues returns on every rank every rank's v in rank order
// (Size() values). It is Allgather of one element per rank, with
// Allgather's blocking and errors.
func AllgatherValues[T any](ctx context.Context, c *mpi.Comm, v T) ([]T, error) {
	out, err := Allgather(ctx, c, []T{v})
	if err == nil && len(out) != c.Size() {
		return nil, fmt.Errorf("collectives: Allgather: %d values for %d ranks", len(out), c.Size())
	}
	return out, err
}

// ScatterValues returns vs[i] on rank i. Only root's vs is read (the others
// may pass nil), and it must have exactly Size() values: otherwise every
// rank returns an error wrapping ErrCounts that names both numbers. It is
// Scatter of one element per rank, with Scatter's blocking and other
// errors, under a name of its own (ScatterValues), so that a rank calling
// Scatter where another calls ScatterValues is a mismatch.
func ScatterValues[T any](ctx context.Context, c *mpi.Comm, root int, vs []T) (T, error) {
	out, err := scatter(ctx, c, kScatterValues, root, vs, nil)
	return one(out, err, "ScatterValues", c)
}

// one returns the single value of a collective's result.
func one[T any](out []T, err error, op string, c *mpi.Comm) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	if len(out) != 1 {
		return zero, fmt.Errorf("collectives: %s: %d values reached rank %d, want 1", op, len(out), c.Rank())
	}
	return out[0], nil
}
