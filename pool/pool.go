package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/mpi"
)

// Map runs fn on every element of inputs, spread over the ranks of c, and
// returns the results in input order on rank 0 and nil on the other ranks.
// Every rank of c calls it with the same fn; inputs is read on rank 0 only
// (the other ranks may pass nil), and every rank, rank 0 included, runs fn
// on the tasks it is handed, each task exactly once. It blocks, on every
// rank, until every result is in on rank 0 or the call has failed, so that
// every rank returns the call's outcome.
//
// Errors: a *TaskError on every rank when fn fails on a task; ctx's error
// (wrapped) on a rank whose ctx ends, and an error wrapping ErrStopped on
// the others; mpi's errors (ErrClosed, ErrConnLost, ErrAborted) when the
// communicator fails; an error naming a bad option (Chunk below 1) or a nil
// fn; an error wrapping mpi.ErrNilContext, at once, for a nil ctx.
func Map[In, Out any](ctx context.Context, c *mpi.Comm, inputs []In,
	fn func(ctx context.Context, in In) (Out, error), opts ...Option) ([]Out, error) {
	var results []Out
	store := func(start int, outs []Out) error {
		copy(results[start:], outs)
		return nil
	}
	if c != nil && c.Rank() == 0 {
		results = make([]Out, len(inputs))
	}
	if err := run(ctx, c, "Map", inputs, fn, store, opts); err != nil {
		return nil, err
	}
	return results, nil
}

// MapUnordered is Map that hands each result to each on rank 0 as it
// arrives, with its task's index, instead of collecting them: results come
// in no particular order (in chunks, each in order), each is called once per
// task, from one goroutine at a time (never concurrently), and may keep out.
// An error from each ends the call on every rank, as a task's error does:
// MapUnordered returns it, wrapped, on rank 0, and an error wrapping
// ErrStopped elsewhere. each is not called on other ranks (it may be nil
// there).
func MapUnordered[In, Out any](ctx context.Context, c *mpi.Comm, inputs []In,
	fn func(ctx context.Context, in In) (Out, error), each func(i int, out Out) error, opts ...Option) error {
	if c != nil && c.Rank() == 0 && each == nil {
		opts = append(opts, func(*config) error { return errors.New("pool: MapUnordered: nil each") })
	}
	store := func(start int, outs []Out) error {
		for j, out := range outs {
			if err := each(start+j, out); err != nil {
				return fmt.Errorf("pool: each(%d): %w", start+j, err)
			}
		}
		return nil
	}
	return run(ctx, c, "MapUnordered", inputs, fn, store, opts)
}

// An Option changes how Map and MapUnordered hand out tasks. Only rank 0's
// options matter (it does the handing out); other ranks may pass the same.
type Option func(*config) error

type config struct {
	chunk   int  // tasks per hand-out; 0: chosen from the task count
	static  bool // one block per rank, up front
	retries int  // how often a task lost with its rank is run again
}

// defaultRetries is how often a task lost with its rank is run again
// unless Retries says otherwise: as Dask, which gives up on a task after
// its third lost worker.
const defaultRetries = 2

// Chunk makes Map hand out k tasks at a time (the last chunk may be
// smaller). Larger chunks cost fewer messages, smaller ones balance better;
// by default the size is chosen from the task count. k must be at least 1.
// With Static it cuts each rank's block into chunks of k, all sent up front.
func Chunk(k int) Option {
	return func(cfg *config) error {
		if k < 1 {
			return fmt.Errorf("pool: Chunk(%d): a chunk is at least 1 task", k)
		}
		cfg.chunk = k
		return nil
	}
}

// Retries bounds how often a task is run again after the rank running it
// was lost (it died under gorun --on-failure continue, or closed its
// world): a task that loses more than n ranks ends the call with a
// *TaskError naming it, as one that kills every rank it touches must. The
// tasks a lost rank held are all run again; those of a chunk it was
// running go again one by one, so that the one to blame is found. The
// default is 2 (a third rank lost to one task fails the call); n must be
// at least 0.
func Retries(n int) Option {
	return func(cfg *config) error {
		if n < 0 {
			return fmt.Errorf("pool: Retries(%d): must not be negative", n)
		}
		cfg.retries = n
		return nil
	}
}

// Static makes Map cut the tasks, up front, into one contiguous block per
// rank (lengths differ by at most one, lower ranks longer; the blocks of
// collectives.Scatter), instead of handing them out as ranks finish: the
// fewest messages, and no load balancing. Each block travels in one message
// unless Chunk is given too.
func Static() Option {
	return func(cfg *config) error {
		cfg.static = true
		return nil
	}
}

// ErrStopped is wrapped by the error a rank returns when the call was ended
// by something other than a task's failure on another rank: that rank's ctx
// ended, each returned an error, or its communicator failed. The message
// says which rank and why.
var ErrStopped = errors.New("pool: call ended by another rank")

// TaskError reports a task whose fn returned an error or panicked. Every
// rank of the call returns one with the same Index and Rank, as
// multiprocessing re-raises a worker's exception in the caller: a panic in
// fn does not end the process that ran it, and its Err says "panic:", the
// panic's value, and the line that panicked.
type TaskError struct {
	Index int   // the task's index in inputs
	Rank  int   // the rank (of the communicator) that ran it
	Err   error // fn's error (or panic) on that rank; elsewhere an error with its text
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("pool: task %d (on rank %d): %v", e.Index, e.Rank, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// run is Map and MapUnordered (op): store takes the results of tasks
// start, start+1, ... on rank 0.
func run[In, Out any](ctx context.Context, c *mpi.Comm, op string, inputs []In,
	fn func(ctx context.Context, in In) (Out, error), store func(start int, outs []Out) error, opts []Option) error {
	cfg, bad, err := configure(ctx, c, fn == nil, opts)
	if err != nil {
		return err
	}
	if c.Size() == 1 {
		if bad != nil {
			return bad
		}
		x := enter(ctx, c, op, 0)
		defer x.exit()
		return loop(ctx, inputs, fn, store, &x.ran)
	}
	sh, tag, seq, err := begin(ctx, c)
	if err != nil {
		return err
	}
	x := enter(ctx, c, op, seq)
	defer x.exit()
	if c.Rank() == 0 {
		m := newMaster(ctx, sh, tag, inputs, fn, store, cfg, &x.ran)
		return m.run(bad)
	}
	return work(ctx, sh, tag, fn, bad, &x.ran)
}

// configure checks a call's arguments: an error for a nil ctx or
// communicator, which ends the call on this rank at once, else the options'
// config and bad, the first mistake in them or a nil fn, which ends the
// call on every rank.
func configure(ctx context.Context, c *mpi.Comm, nilFn bool, opts []Option) (cfg config, bad, err error) {
	if ctx == nil {
		return cfg, nil, fmt.Errorf("pool: %w", mpi.ErrNilContext)
	}
	if c == nil {
		return cfg, nil, errors.New("pool: nil communicator")
	}
	cfg.retries = defaultRetries
	for _, o := range opts {
		if err := o(&cfg); err != nil && bad == nil {
			bad = err
		}
	}
	if nilFn && bad == nil {
		bad = errors.New("pool: nil fn")
	}
	return cfg, bad, nil
}

// loop is the call on a world of one.
func loop[In, Out any](ctx context.Context, inputs []In, fn func(ctx context.Context, in In) (Out, error),
	store func(start int, outs []Out) error, ran *atomic.Int64) error {
	for i, in := range inputs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pool: %w", err)
		}
		out, err := call(ctx, fn, in)
		ran.Add(1)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("pool: %w", ctx.Err())
			}
			return &TaskError{Index: i, Rank: 0, Err: err}
		}
		if err := store(i, []Out{out}); err != nil {
			return err
		}
	}
	return nil
}

// Isolation, as in package collectives: every call works on a shadow of the
// caller's communicator, a Dup made on first use, and each call on it has
// two tags of its own (down: rank 0 to the others; up: back).

var shadows sync.Map // weak.Pointer[mpi.Comm] -> *shadow

type shadow struct {
	mu   sync.Mutex
	comm *mpi.Comm // nil until made
	seq  int       // calls so far
}

// tagCalls is how many calls have distinct tags before tags repeat.
const tagCalls = (mpi.MaxTag + 1) / 2

// begin finds or makes c's shadow, numbers the call, and returns the
// shadow, the call's down tag (the up tag is one more) and its number.
func begin(ctx context.Context, c *mpi.Comm) (*mpi.Comm, int, int, error) {
	if errors.Is(c.Err(), mpi.ErrClosed) {
		return nil, 0, 0, fmt.Errorf("pool: %w", mpi.ErrClosed)
	}
	key := weak.Make(c)
	v, ok := shadows.Load(key)
	if !ok {
		var loaded bool
		v, loaded = shadows.LoadOrStore(key, &shadow{})
		if !loaded {
			runtime.AddCleanup(c, func(k weak.Pointer[mpi.Comm]) { shadows.Delete(k) }, key)
		}
	}
	sh := v.(*shadow)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.comm == nil {
		d, err := c.Dup(quiet(ctx)) // the shadow is not the program's Dup
		if err != nil {
			return nil, 0, 0, fmt.Errorf("pool: %w", err)
		}
		blocked.QuietComm(d)
		sh.comm = d
	}
	tag := (sh.seq % tagCalls) * 2
	sh.seq++
	return sh.comm, tag, sh.seq, nil
}
