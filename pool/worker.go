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
	go func() {
		for ch := range todo {
			outs, err := runChunk(runCtx, fn, ch.ins, ch.s.start, rank, ran)
			if err == nil {
				var msg []byte
				if msg, err = appendChunk(msgChunk, ch.s, outs); err != nil {
					err = fmt.Errorf("pool: results of tasks [%d, %d) on rank %d: %w", ch.s.start, ch.s.start+ch.s.count, rank, err)
				} else if err = c.Send(quiet(runCtx), 0, up, msg); err != nil {
					err = fmt.Errorf("pool: sending results to rank 0: %w", err)
				}
			}
			if err != nil {
				runnerDone <- err
				return
			}
		}
		runnerDone <- nil
	}()

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
			if len(data) == 0 {
				err := fmt.Errorf("pool: rank 0 sent an empty message")
				tell(ctx, c, up, appendFailure(err, rank))
				return end(err, err)
			}
			switch data[0] {
			case msgChunk:
				s, ins, err := parseChunk[In](data[1:])
				if err != nil {
					err = fmt.Errorf("pool: tasks from rank 0 on rank %d: %w", rank, err)
					tell(ctx, c, up, appendFailure(err, rank))
					return end(err, err)
				}
				queue = append(queue, chunk[In]{s, ins})
				req = c.Irecv(0, down)
			case msgStop:
				stopped = true
			case msgAbort:
				err := parseFailure(data[1:])
				return end(err, err)
			default:
				err := fmt.Errorf("pool: rank 0 sent a message of unknown kind %d", data[0])
				tell(ctx, c, up, appendFailure(err, rank))
				return end(err, err)
			}
		case err := <-runnerDone:
			finished = true
			if err == nil {
				return end(nil, nil) // stopped, and every chunk done
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

// tell sends rank 0 a failure message, trying for a bounded time even when
// ctx has ended.
func tell(ctx context.Context, c *mpi.Comm, up int, msg []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(quiet(ctx)), abortGrace)
	defer cancel()
	_ = c.Send(ctx, 0, up, msg) // rank 0 may have ended already: nothing more to do
}
