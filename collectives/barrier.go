package collectives

import (
	"context"

	"github.com/gorun-hpc/gorun/mpi"
)

// noElem stands for the element type of calls that carry none.
var noElem = &elemInfo{name: "none"}

// Barrier blocks until every rank of c has called it, or ctx is done.
//
// Every rank tells rank 0, which answers every rank once it has heard from
// all (two hops, 2(n-1) messages; above 64 ranks, through group leaders).
// It returns an error wrapping ErrMismatch if the ranks called different
// collectives at this point, and wraps the mpi errors (ErrClosed,
// ErrAborted, ErrConnLost) and ctx.Err().
func Barrier(ctx context.Context, c *mpi.Comm) (err error) {
	x, err := begin(ctx, c, kBarrier, noElem, 0, 0)
	if err != nil {
		return err
	}
	defer func() { _, err = done[byte](x, nil, err) }()
	_, err = barrier(x)
	return err
}

// barrier is Barrier's work, once begun.
func barrier(x *call) (struct{}, error) {
	_, _, err := x.agree(nil, nil)
	return struct{}{}, err
}
