package collectives

import (
	"context"

	"github.com/gorun-hpc/gorun/mpi"
)

// noElem stands for the element type of calls that carry none.
var noElem = &elemInfo{name: "none"}

// Barrier blocks until every rank of c has called it, or ctx is done.
//
// Where every rank of c is on one host's shared memory, each rank counts
// itself in on a flag there and waits for the count: no message. Else
// every rank tells rank 0, which answers every rank once it has heard from
// all (two hops, 2(n-1) messages; above 64 ranks, and on ranks spread over
// hosts, through group leaders). It returns an error wrapping ErrMismatch
// if the ranks called different collectives at this point, and wraps the
// mpi errors (ErrClosed, ErrAborted, ErrConnLost) and ctx.Err().
func Barrier(ctx context.Context, c *mpi.Comm) (err error) {
	x, err := begin(ctx, c, kBarrier, noElem, 0, 0)
	if err != nil {
		return err
	}
	defer func() { _, err = done[byte](x, nil, err) }()
	if f := x.sh.flags; f != nil {
		// Every blocking call arrived on the flags as it began (shadow.enter):
		// once all have, and all as a Barrier, it is done. A rank that
		// called another collective here makes every rank take the
		// agreement below, which says so.
		same, err := f.Wait(x.ctx, x.seq, byte(kBarrier))
		if err != nil {
			return opError(x.k, err)
		}
		if same {
			return nil
		}
	}
	_, err = barrier(x)
	return err
}

// barrier is Barrier's work, once begun.
func barrier(x *call) (struct{}, error) {
	_, _, err := x.agree(nil, nil)
	return struct{}{}, err
}
