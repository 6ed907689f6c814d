package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Scan returns on rank r the element-wise combination with op of the data
// of ranks 0 to r (an inclusive prefix reduction). Every rank must pass the
// same len(data). data is not changed, and the result never shares memory
// with it. It panics if op is nil.
//
// It takes ceil(log2 n) rounds (Hillis and Steele), which also check the
// call: every rank returns an error wrapping ErrMismatch if the ranks pass
// different lengths or element types; and wraps the mpi errors and
// ctx.Err().
func Scan[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, op Op[T]) ([]T, error) {
	return scan(ctx, c, kScan, data, op)
}

// Exscan returns on rank r > 0 the element-wise combination with op of the
// data of ranks 0 to r-1 (an exclusive prefix reduction), and nil on rank 0,
// before which there is nothing. Otherwise it is like Scan.
func Exscan[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, op Op[T]) ([]T, error) {
	return scan(ctx, c, kExscan, data, op)
}

func scan[T mpi.Number](ctx context.Context, c *mpi.Comm, k kind, data []T, op Op[T]) ([]T, error) {
	if op == nil {
		panic(fmt.Sprintf("collectives: %s: nil Op", k))
	}
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, 0, len(data))
	if err != nil {
		return nil, err
	}
	// partial combines the ranks (rank-w, rank], w the width so far; excl
	// the ranks before rank within the same window (nil until any).
	partial := clone(data)
	var excl []T
	err = x.disseminate(false, 1, func(s int) ([]byte, bool) {
		if send, _ := scanEdge(x.rank, s, x.size); !send {
			return nil, false
		}
		return mpi.AsBytes(partial), true
	}, func(s int, p []byte) error {
		if _, recv := scanEdge(x.rank, s, x.size); !recv {
			return nil
		}
		in, err := mpi.FromBytes[T](p)
		if err != nil || len(in) != len(partial) {
			return nil // a mismatched call; the verdict will say so
		}
		if k == kExscan {
			if excl == nil {
				excl = clone(in)
			} else {
				e := clone(in)
				op(e, excl)
				excl = e
			}
		}
		op(in, partial) // in comes from lower ranks: in op partial
		partial = in
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := x.verdict(); err != nil {
		return nil, err
	}
	if k == kExscan {
		return excl, nil
	}
	return partial, nil
}
