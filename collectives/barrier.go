package collectives

import (
	"context"

	"github.com/gorun-hpc/gorun/mpi"
)

// noElem stands for the element type of calls that carry none.
var noElem = &elemInfo{name: "none"}

// disseminate runs the first phase of a call as a dissemination: in the
// round of distance s, every rank sends its status to rank+dir*s and merges
// the status from rank-dir*s, so that after ceil(log2 n) rounds every rank
// holds the status merged over all ranks. down orders the distances from
// the largest. out says what payload, if any, goes with a round's message;
// in takes the payload received, if any. Either may be nil.
func (x *call) disseminate(down bool, dir int, out func(s int) ([]byte, bool), in func(s int, p []byte) error) error {
	for _, s := range distances(x.size, down) {
		var payload []byte
		var has bool
		if out != nil {
			payload, has = out(s)
		}
		p, err := x.round(mod(x.rank+dir*s, x.size), mod(x.rank-dir*s, x.size), payload, has)
		if err != nil {
			return err
		}
		if p != nil && in != nil {
			if err := in(s, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Barrier blocks until every rank of c has called it, or ctx is done.
//
// It is a dissemination barrier: ceil(log2 Size()) rounds, in each of which
// every rank sends one small message and receives one. It returns an error
// wrapping ErrMismatch if the ranks called different collectives at this
// point (as far as the messages tell), and wraps the mpi errors (ErrClosed,
// ErrAborted, ErrConnLost) and ctx.Err().
func Barrier(ctx context.Context, c *mpi.Comm) error {
	x, err := begin(ctx, c, kBarrier, noElem, 0, 0)
	if err != nil {
		return err
	}
	if err := x.disseminate(false, 1, nil, nil); err != nil {
		return err
	}
	return x.verdict()
}
