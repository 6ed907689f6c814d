package pool

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/gorun-hpc/gorun/mpi"
)

// chunk is a chunk of tasks as a worker holds them.
type chunk[In any] struct {
	s   span
	ins []In
}

// work is the call on a rank other than 0: it receives chunks from rank 0
// and queues them for its runner goroutine, which runs them in order and
// sends back each chunk's results, until rank 0 says stop (or abort). bad
// is an error found before the call began, which this rank reports to rank
// 0 (ending the call everywhere).
func work[In, Out any](ctx context.Context, c *mpi.Comm, down int, fn func(ctx context.Context, in In) (Out, error), bad error, ran *atomic.Int64) error {
	up := down + 1
	qctx := quiet(ctx) // for the calls on the shadow
	rank := c.Rank()
	if bad != nil {
		tell(ctx, c, up, appendFailure(bad, rank))
		return bad
	}
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	todo := make(chan chunk[In])
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- runChunks(runCtx, c, up, fn, todo, ran) }()

	var (
		queue    []chunk[In]
		stopped  bool // rank 0 said stop: no more chunks
		closed   bool // todo closed
		finished bool // the runner's result has been read
		req      = c.Irecv(0, down)
	)
	// end stops the runner (canceling its fn calls with cause, unless nil),
	// waits for it, and returns err.
	end := func(cause, err error) error {
		if req != nil {
			req.Cancel()
		}
		if cause != nil {
			cancelRun(cause)
		}
		if !closed {
			close(todo)
			closed = true
		}
		if !finished {
			<-runnerDone
		}
		return err
	}
	for {
		var out chan chunk[In]
		var head chunk[In]
		if len(queue) > 0 {
			out, head = todo, queue[0]
		} else if stopped && !closed {
			close(todo)
			closed = true
		}
		var arrived <-chan struct{}
		if req != nil {
			arrived = req.Done()
		}
		select {
		case out <- head:
			queue[0] = chunk[In]{}
			queue = queue[1:]
		case <-arrived:
			_, err := req.Wait(qctx)
			data := req.Data()
			req = nil
			if err != nil {
				err = fmt.Errorf("pool: %w", err)
				return end(err, err)
			}
			ch, stop, ours, err := fromRank0[In](data, rank)
			switch {
			case err != nil:
				if ours {
					tell(ctx, c, up, appendFailure(err, rank))
				}
				return end(err, err)
			case stop:
				stopped = true
			default:
				queue = append(queue, ch)
				req = c.Irecv(0, down)
			}
		case err := <-runnerDone:
			finished = true
			if err == nil {
				return end(nil, nil) // stopped, and every chunk done
			}
			if ferr := failedFirst[In](qctx, req, rank); ferr != nil {
				req = nil
				return end(ferr, ferr)
			}
			if ctx.Err() != nil {
				err = fmt.Errorf("pool: %w", ctx.Err())
			}
			tell(ctx, c, up, appendFailure(err, rank))
			return end(err, err)
		case <-ctx.Done():
			err := fmt.Errorf("pool: %w", ctx.Err())
			tell(ctx, c, up, appendFailure(err, rank))
			return end(err, err)
		}
	}
}

// failedFirst is rank 0's word that the call failed, if it has come on
// req already (nil if not, or if it is a chunk or stop): a worker whose
// runner failed because rank 0 left (its results could not be sent) heard
// rank 0's failure first, as rank 0 said it before it left, and that is
// the call's outcome, not the lost send.
func failedFirst[In any](ctx context.Context, req *mpi.Request, rank int) error {
	if req == nil {
		return nil
	}
	select {
	case <-req.Done():
	default:
		return nil
	}
	if _, err := req.Wait(ctx); err != nil {
		return nil
	}
	if _, _, ours, err := fromRank0[In](req.Data(), rank); err != nil && !ours {
		return err
	}
	return nil
}

// runChunks runs the chunks of todo in order and sends rank 0 each one's
// results, until todo closes (nil) or a chunk fails (its error).
func runChunks[In, Out any](ctx context.Context, c *mpi.Comm, up int, fn func(ctx context.Context, in In) (Out, error), todo <-chan chunk[In], ran *atomic.Int64) error {
	rank := c.Rank()
	for ch := range todo {
		outs, err := runChunk(ctx, fn, ch.ins, ch.s.start, rank, ran)
		if err != nil {
			return err
		}
		msg, err := appendChunk(msgChunk, ch.s, outs)
		if err != nil {
			return fmt.Errorf("pool: results of tasks [%d, %d) on rank %d: %w", ch.s.start, ch.s.start+ch.s.count, rank, err)
		}
		if err := c.Send(quiet(ctx), 0, up, msg); err != nil {
			return fmt.Errorf("pool: sending results to rank 0: %w", err)
		}
	}
	return nil
}

// fromRank0 reads a message from rank 0 to worker rank: a chunk of tasks,
// or stop; or err, rank 0's abort (ours false) or a message this rank
// cannot read (ours: this rank tells rank 0).
func fromRank0[In any](data []byte, rank int) (ch chunk[In], stop, ours bool, err error) {
	if len(data) == 0 {
		return ch, false, true, fmt.Errorf("pool: rank 0 sent an empty message")
	}
	switch data[0] {
	case msgChunk:
		s, ins, err := parseChunk[In](data[1:])
		if err != nil {
			return ch, false, true, fmt.Errorf("pool: tasks from rank 0 on rank %d: %w", rank, err)
		}
		return chunk[In]{s, ins}, false, false, nil
	case msgStop:
		return ch, true, false, nil
	case msgAbort:
		return ch, false, false, parseFailure(data[1:])
	}
	return ch, false, true, fmt.Errorf("pool: rank 0 sent a message of unknown kind %d", data[0])
}

// tell sends rank 0 a failure message, trying for a bounded time even when
// ctx has ended.
func tell(ctx context.Context, c *mpi.Comm, up int, msg []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(quiet(ctx)), abortGrace)
	defer cancel()
	_ = c.Send(ctx, 0, up, msg) // rank 0 may have ended already: nothing more to do
}
