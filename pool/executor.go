package pool

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime/debug"
	"sync"

	"github.com/gorun-hpc/gorun/mpi"
)

// Run is mpi4py.futures' MPIPoolExecutor, and concurrent.futures'
// executors: body runs on rank 0 and submits tasks as it goes (from the
// results of earlier ones, say), and every rank, rank 0 included, runs fn
// on the tasks it is handed, with Map's hand-out (chunks, a reserve on
// each rank), wire form and failure rules. Every rank of c calls Run with
// the same fn; body is called on rank 0 only (the other ranks may pass
// nil), and the other ranks serve tasks until it has returned.
//
// Run returns once body has returned and every task it submitted has
// finished or been canceled (as leaving a `with ProcessPoolExecutor()`
// block waits for them): nil when all went well. A task whose fn fails
// ends the call on every rank with a *TaskError, as in Map: every future
// still pending gets it too, and body's ctx is canceled. An error that
// body returns ends the call: Run returns it, wrapped, on rank 0, after
// canceling what was still pending, and an error wrapping ErrStopped on the
// others. ctx's end, or a lost rank, ends it as it ends Map.
func Run[In, Out any](ctx context.Context, c *mpi.Comm, fn func(ctx context.Context, in In) (Out, error),
	body func(ctx context.Context, ex *Executor[In, Out]) error, opts ...Option) error {
	cfg, bad, err := configure(ctx, c, fn == nil, opts)
	if err != nil {
		return err
	}
	switch {
	case bad != nil:
	case cfg.static:
		bad = errors.New("pool: Run: Static needs every task up front: use Map")
	case body == nil && c.Rank() == 0:
		bad = errors.New("pool: Run: nil body")
	}
	sh, tag, seq, err := begin(ctx, c)
	if err != nil {
		return err
	}
	x := enter(ctx, c, "Run", seq)
	defer x.exit()
	if c.Rank() != 0 {
		return work(ctx, sh, tag, fn, bad, &x.ran)
	}
	ex := &Executor[In, Out]{kick: make(chan struct{}, 1)}
	m := newMaster(ctx, sh, tag, nil, fn, ex.store, cfg, &x.ran)
	m.ex, m.kick = ex, ex.kick
	if bad != nil {
		return m.run(bad)
	}
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ex.cancelBody = cancel
	bodyDone := make(chan struct{})
	go func() {
		defer close(bodyDone)
		ex.close(callBody(bctx, body, ex))
	}()
	err = m.run(nil)
	if err != nil {
		cancel(err)
	}
	<-bodyDone
	return err
}

// callBody runs body, turning a panic into an error (so that the call ends
// on every rank, and rank 0's locks are let go).
func callBody[In, Out any](ctx context.Context, body func(context.Context, *Executor[In, Out]) error, ex *Executor[In, Out]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, at: panicSite(debug.Stack())}
		}
	}()
	return body(ctx, ex)
}

// ErrExecutorDone is the error of a future submitted after Run's body
// returned or the call ended.
var ErrExecutorDone = errors.New("pool: the executor takes no more tasks")

// Executor takes the tasks of a Run on rank 0 (Submit) and tells when each
// is done (its Future). Its methods are safe for use by many goroutines of
// body.
type Executor[In, Out any] struct {
	mu         sync.Mutex
	tasks      []In           // every task submitted, by index
	futs       []*Future[Out] // their futures
	closed     bool           // body returned
	err        error          // body's error, or the call's failure
	failed     bool           // the call ended with err
	kick       chan struct{}  // capacity 1: tell the hand-out that something changed
	cancelBody context.CancelCauseFunc
}

// Future is a task submitted to a Run: its result once done.
type Future[Out any] struct {
	mu       *sync.Mutex // the executor's
	index    int
	state    futureState
	done     chan struct{}
	out      Out
	err      error
	watchers []chan<- *Future[Out] // AsCompleted's, told when it is done
}

type futureState uint8

const (
	pending  futureState = iota // submitted, not yet handed to a rank
	running                     // handed out: it will run to its end
	finished                    // done: out and err are set
	canceled                    // canceled before it ran
)

// Submit adds a task and returns its future. It does not block: the task
// waits in rank 0's queue until a rank is free. After body has returned,
// or the call has failed, the future is done at once with an error
// (ErrExecutorDone, or the call's failure).
func (ex *Executor[In, Out]) Submit(in In) *Future[Out] {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	f := &Future[Out]{mu: &ex.mu, index: len(ex.futs), done: make(chan struct{})}
	if ex.closed || ex.failed {
		f.err = ErrExecutorDone
		if ex.failed {
			f.err = ex.err
		}
		f.state = finished
		close(f.done)
		return f
	}
	ex.tasks = append(ex.tasks, in)
	ex.futs = append(ex.futs, f)
	ex.poke()
	return f
}

// AsCompleted yields each of fs once, as it finishes (or is canceled), with
// its error, in the order they finish, as concurrent.futures.as_completed
// does; futures already done come first. When ctx ends first it yields
// (nil, ctx's error, wrapped) and stops.
func (ex *Executor[In, Out]) AsCompleted(ctx context.Context, fs ...*Future[Out]) iter.Seq2[*Future[Out], error] {
	return func(yield func(*Future[Out], error) bool) {
		if ctx == nil {
			yield(nil, fmt.Errorf("pool: AsCompleted: %w", mpi.ErrNilContext))
			return
		}
		ch := make(chan *Future[Out], len(fs))
		ex.mu.Lock()
		for _, f := range fs {
			if f.state == finished || f.state == canceled {
				ch <- f
			} else {
				f.watchers = append(f.watchers, ch)
			}
		}
		ex.mu.Unlock()
		for range fs {
			select {
			case f := <-ch:
				if !yield(f, f.err) {
					return
				}
			case <-ctx.Done():
				yield(nil, fmt.Errorf("pool: AsCompleted: %w", context.Cause(ctx)))
				return
			}
		}
	}
}

// Index is the task's number: the futures of one Run are numbered 0, 1, ...
// in the order of their Submit.
func (f *Future[Out]) Index() int { return f.index }

// Done is closed when the task has finished or was canceled.
func (f *Future[Out]) Done() <-chan struct{} { return f.done }

// Wait blocks until the task has finished and returns its result, or the
// error that ended it (a *TaskError, the call's failure, or an error
// wrapping context.Canceled for a task that was canceled), or ctx's error
// if ctx ends first.
func (f *Future[Out]) Wait(ctx context.Context) (Out, error) {
	var zero Out
	if ctx == nil {
		return zero, fmt.Errorf("pool: Wait: %w", mpi.ErrNilContext)
	}
	select {
	case <-f.done:
		return f.out, f.err
	case <-ctx.Done():
		return zero, fmt.Errorf("pool: Wait: %w", context.Cause(ctx))
	}
}

// Cancel withdraws the task if no rank has it yet, and reports whether it
// did (as concurrent.futures.Future.cancel): a task handed out runs to its
// end. A canceled task's Wait returns an error wrapping context.Canceled.
func (f *Future[Out]) Cancel() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != pending {
		return f.state == canceled
	}
	f.state = canceled
	f.err = fmt.Errorf("pool: task %d: %w", f.index, context.Canceled)
	f.notify()
	return true
}

// notify closes done and tells the watchers. f.mu is held.
func (f *Future[Out]) notify() {
	close(f.done)
	for _, w := range f.watchers {
		w <- f
	}
	f.watchers = nil
}

// poke tells the hand-out that something changed, without blocking.
func (ex *Executor[In, Out]) poke() {
	select {
	case ex.kick <- struct{}{}:
	default:
	}
}

// close records that body returned, with err.
func (ex *Executor[In, Out]) close(err error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.closed = true
	if err != nil && !ex.failed {
		ex.err = fmt.Errorf("pool: Run: body: %w", err)
	}
	ex.poke()
}

// bodyErr is the error body returned, if any.
func (ex *Executor[In, Out]) bodyErr() error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.failed {
		return nil
	}
	return ex.err
}

// sync brings m's view of the tasks up to date, steps m.next over canceled
// tasks, and reports whether body has returned (no more tasks will come).
func (ex *Executor[In, Out]) sync(m *master[In, Out]) bool {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.syncLocked(m)
	return ex.closed
}

// syncLocked is sync's work, with ex.mu held.
func (ex *Executor[In, Out]) syncLocked(m *master[In, Out]) {
	m.inputs = ex.tasks
	for m.next < len(ex.futs) && ex.futs[m.next].state == canceled {
		m.next++
	}
}

// take is master.take for Run: up to a chunk of the next tasks, none
// canceled, which become running. The inputs and the futures are read
// under one hold of ex.mu: a task submitted between two would be handed
// out with no input in m.inputs (a slice out of range in refill).
func (ex *Executor[In, Out]) take(m *master[In, Out]) (span, bool) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.syncLocked(m)
	s := span{start: m.next}
	for k := max(1, m.cfg.chunk); s.count < k && m.next < len(ex.futs) && ex.futs[m.next].state == pending; s.count++ {
		ex.futs[m.next].state = running
		m.next++
	}
	return s, s.count > 0
}

// store completes the futures of tasks start, start+1, ... with outs.
func (ex *Executor[In, Out]) store(start int, outs []Out) error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for j, out := range outs {
		f := ex.futs[start+j]
		f.out, f.state = out, finished
		f.notify()
	}
	return nil
}

// fail ends every future not yet done with err, the call's failure, and
// cancels body's ctx.
func (ex *Executor[In, Out]) fail(err error) {
	ex.mu.Lock()
	ex.failed, ex.err = true, err
	for _, f := range ex.futs {
		if f.state == pending || f.state == running {
			f.err, f.state = err, finished
			f.notify()
		}
	}
	ex.mu.Unlock()
	if ex.cancelBody != nil {
		ex.cancelBody(err)
	}
}
