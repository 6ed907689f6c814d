package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
)

// Hand-out parameters.
const (
	// window is how many chunks a rank other than 0 holds at once in the
	// dynamic hand-out: the one it runs and one in reserve, so it never
	// waits for a round trip to rank 0 (until the last window*n tasks,
	// which go one at a time to ranks with none in hand). Rank 0 runs its
	// share with no round trip, and holds one.
	window = 2
	// chunksPerRank is what the default chunk size aims at: about this
	// many chunks per rank, so messages cost little beside the tasks (one
	// task per chunk up to 64 tasks per rank).
	chunksPerRank = 64
	// abortGrace bounds how long rank 0 tries to tell the other ranks that
	// the call failed.
	abortGrace = 2 * time.Second
)

// defaultChunk is the chunk size for total tasks on n ranks when Chunk is
// not given: total/(n*chunksPerRank), at least 1.
func defaultChunk(total, n int) int {
	return max(1, total/(n*chunksPerRank))
}

// taper is the size of the next default chunk when remaining tasks are
// left on n ranks: no more than half a rank's share of what is left, so
// that the last chunks are small and end together.
func taper(chunk, remaining, n int) int {
	return max(1, min(chunk, (remaining+2*n-1)/(2*n)))
}

// block is rank r's static block of total tasks on n ranks: lengths differ
// by at most one, lower ranks longer.
func block(r, total, n int) span {
	q, rem := total/n, total%n
	start := r*q + min(r, rem)
	count := q
	if r < rem {
		count++
	}
	return span{start, count}
}

// master is rank 0's side of a call: it hands out the tasks, runs its own
// share in a goroutine (runLocal), and collects the results.
type master[In, Out any] struct {
	ctx      context.Context
	qctx     context.Context // ctx for the calls on the shadow (quiet)
	ran      *atomic.Int64   // tasks rank 0 ran
	c        *mpi.Comm       // the shadow
	down, up int             // tags
	inputs   []In
	fn       func(ctx context.Context, in In) (Out, error)
	store    func(start int, outs []Out) error
	cfg      config
	n        int
	chunk    int // default chunk size (when cfg.chunk is 0)
	// ex is Run's executor, nil for Map: the tasks are what its body has
	// submitted so far (inputs follows ex.tasks), and more may come until
	// the body returns.
	ex      *Executor[In, Out]
	kick    <-chan struct{} // ex's: a task submitted or canceled, or the body returned
	next    int             // dynamic: the first task not yet handed out
	blocks  []span          // static: what is left of each rank's block
	queued  [][]span
	stopped []bool // told there is no more work
	// A rank other than 0 that is lost (gorun --on-failure continue) hands
	// back what it held: its chunks go to the others (retry first), each
	// task at most cfg.retries times (tries).
	dead  []bool
	retry []span
	tries map[int]int
	watch []*mpi.Request // per rank: a receive nothing matches, which fails when the rank is lost
	lostC chan int       // the rank whose watch ended
	done  int            // tasks whose results are in
	sends []sending

	runCtx    context.Context
	cancelRun context.CancelCauseFunc
	localWork chan chunk[In]
	localDone chan localResult[Out]
	localEnd  bool // localDone closed and seen
}

type localResult[Out any] struct {
	s    span
	outs []Out
	err  error
}

func newMaster[In, Out any](ctx context.Context, c *mpi.Comm, down int, inputs []In,
	fn func(ctx context.Context, in In) (Out, error), store func(start int, outs []Out) error, cfg config, ran *atomic.Int64) *master[In, Out] {
	n := c.Size()
	m := &master[In, Out]{ctx: ctx, qctx: quiet(ctx), ran: ran, c: c, down: down, up: down + 1, inputs: inputs, fn: fn, store: store, cfg: cfg, n: n,
		chunk: defaultChunk(len(inputs), n), queued: make([][]span, n), stopped: make([]bool, n), dead: make([]bool, n),
		localWork: make(chan chunk[In], 1), localDone: make(chan localResult[Out], 1)}
	if cfg.static {
		m.blocks = make([]span, n)
		for r := range n {
			m.blocks[r] = block(r, len(inputs), n)
		}
	}
	m.runCtx, m.cancelRun = context.WithCancelCause(ctx)
	return m
}

// run is the call on rank 0; bad is an error found before it began (an
// option), which ends the call on every rank.
func (m *master[In, Out]) run(bad error) error {
	defer m.cancelRun(nil)
	go m.runLocal()
	if bad != nil {
		return m.fail(bad, -1, nil)
	}
	m.watchRanks()
	defer func() {
		for _, r := range m.watch {
			if r != nil {
				r.Cancel()
			}
		}
	}()
	for w := 1; w < m.n; w++ {
		if err := m.refill(w); err != nil {
			return m.fail(err, -1, nil)
		}
	}
	if err := m.refill(0); err != nil {
		return m.fail(err, -1, nil)
	}
	if err := m.collect(); err != nil {
		return err
	}
	// Every result is in (and Run's body has returned): the ranks, which
	// wait for a stop or a failure, are told to stop.
	if err := m.refillAll(); err != nil {
		return m.fail(err, -1, nil)
	}
	m.stopLocal(nil)
	// Every chunk has come back, so only stop messages can be in flight.
	for _, s := range m.sends {
		if _, err := s.r.Wait(m.qctx); err != nil && !errors.Is(err, mpi.ErrPeerLost) {
			return m.fail(fmt.Errorf("pool: stopping rank %d: %w", s.to, err), -1, nil)
		}
	}
	m.sends = nil
	return nil
}

// collect takes the ranks' results, and hands out more, until every
// result is in; its errors have been through fail.
func (m *master[In, Out]) collect() error {
	var req *mpi.Request
	defer func() {
		if req != nil {
			req.Cancel()
		}
	}()
	// receive takes the message req got.
	receive := func() error {
		st, err := req.Wait(m.qctx)
		data := req.Data()
		req = nil
		if err != nil {
			return m.fail(fmt.Errorf("pool: %w", err), -1, nil)
		}
		return m.handle(st.Source, data)
	}
	for !m.finished() {
		if req == nil {
			req = m.c.Irecv(mpi.AnySource, m.up)
		}
		// A message that has come goes first: a rank that failed says so
		// before it leaves, which is why a send to it may have failed.
		select {
		case <-req.Done():
			if err := receive(); err != nil {
				return err
			}
			continue
		default:
		}
		if err := m.sent(); err != nil {
			return m.fail(err, -1, nil)
		}
		var err error
		select {
		case <-req.Done():
			if err := receive(); err != nil {
				return err
			}
		case r, ok := <-m.localDone:
			err = m.local(r, ok)
		case w := <-m.lostC:
			err = m.lost(w)
		case <-m.kick:
			if err = m.ex.bodyErr(); err == nil {
				err = m.refillAll()
			}
		case <-m.ctx.Done():
			err = fmt.Errorf("pool: %w", m.ctx.Err())
		}
		if err != nil {
			return m.fail(err, -1, nil)
		}
	}
	return nil
}

// local takes the results of rank 0's own chunk; ok false: its runner
// has ended.
func (m *master[In, Out]) local(r localResult[Out], ok bool) error {
	switch {
	case !ok:
		m.localEnd = true
		m.localDone = nil
		return nil
	case r.err == nil:
		return m.accept(0, r.s, r.outs)
	case errors.As(r.err, new(*TaskError)):
		return r.err
	}
	return fmt.Errorf("pool: %w", r.err)
}

// handle is a message from rank w.
func (m *master[In, Out]) handle(w int, data []byte) error {
	if m.dead[w] {
		return nil // its tasks went to others: what it sent before it was lost is dropped
	}
	if len(data) == 0 {
		return m.fail(fmt.Errorf("pool: rank %d sent an empty message", w), -1, nil)
	}
	switch data[0] {
	case msgChunk:
		s, outs, err := parseChunk[Out](data[1:])
		if err != nil {
			return m.fail(fmt.Errorf("pool: results from rank %d: %v", w, err), -1, nil)
		}
		if err := m.accept(w, s, outs); err != nil {
			return m.fail(err, -1, nil)
		}
		return nil
	case msgAbort:
		m.stopped[w] = true // it has returned
		return m.fail(parseFailure(data[1:]), w, data)
	}
	return m.fail(fmt.Errorf("pool: rank %d sent a message of unknown kind %d", w, data[0]), -1, nil)
}

// accept stores the results of chunk s from rank w, which must be the
// oldest chunk w holds, and hands w more work.
func (m *master[In, Out]) accept(w int, s span, outs []Out) error {
	if len(m.queued[w]) == 0 || m.queued[w][0] != s {
		return fmt.Errorf("pool: rank %d sent results of tasks [%d, %d), which it was not running", w, s.start, s.start+s.count)
	}
	m.queued[w] = m.queued[w][1:]
	if err := m.store(s.start, outs); err != nil {
		return err
	}
	m.done += s.count
	return m.refill(w)
}

// finished reports whether every task is done: Map's all stored, Run's
// body returned and every task it submitted stored or canceled.
func (m *master[In, Out]) finished() bool {
	if m.ex == nil {
		return m.done == len(m.inputs)
	}
	if !m.ex.sync(m) || m.ex.bodyErr() != nil {
		return false // body may submit more, or failed (seen at the kick)
	}
	for _, q := range m.queued {
		if len(q) > 0 {
			return false
		}
	}
	return m.next == len(m.inputs) && len(m.retry) == 0
}

// refillAll refills every rank not yet stopped: Run's new tasks, or its
// end.
func (m *master[In, Out]) refillAll() error {
	for w := range m.n {
		if err := m.refill(w); err != nil {
			return err
		}
	}
	return nil
}

// take returns the next chunk for rank w, if any is left.
func (m *master[In, Out]) take(w int) (span, bool) {
	if len(m.retry) > 0 {
		s := m.retry[0]
		m.retry = m.retry[1:]
		return s, true
	}
	if m.ex != nil {
		return m.ex.take(m)
	}
	if m.cfg.static {
		b := &m.blocks[w]
		if b.count == 0 {
			return span{}, false
		}
		k := b.count
		if m.cfg.chunk > 0 {
			k = min(m.cfg.chunk, b.count)
		}
		s := span{b.start, k}
		b.start, b.count = b.start+k, b.count-k
		return s, true
	}
	left := len(m.inputs) - m.next
	if left == 0 {
		return span{}, false
	}
	k := m.cfg.chunk
	if k == 0 {
		k = taper(m.chunk, left, m.n)
	}
	s := span{m.next, min(k, left)}
	m.next += s.count
	return s, true
}

// refill hands rank w chunks until it holds as many as it may, or tells it
// to stop once every result of the call is in.
func (m *master[In, Out]) refill(w int) error {
	if m.stopped[w] {
		return nil // told to stop, or lost
	}
	limit := window
	switch {
	case w == 0:
		limit = 1
	case m.cfg.static:
		limit = len(m.inputs) + 1
	case len(m.inputs)-m.next <= m.n*window:
		// The last few tasks go only to ranks that have none in hand, so
		// that none waits behind a slow rank's reserve.
		limit = 1
	}
	if len(m.retry) > 0 {
		// A lost rank's tasks go to ranks with nothing in hand, one chunk
		// each: a rank lost with one is lost running it (see lose).
		limit = 1
	}
	for len(m.queued[w]) < limit {
		s, ok := m.take(w)
		if !ok {
			break
		}
		m.queued[w] = append(m.queued[w], s)
		if w == 0 {
			m.localWork <- chunk[In]{s, m.inputs[s.start : s.start+s.count]}
			continue
		}
		msg, err := appendChunk(msgChunk, s, m.inputs[s.start:s.start+s.count])
		if err != nil {
			return fmt.Errorf("pool: tasks [%d, %d): %w", s.start, s.start+s.count, err)
		}
		m.post(w, msg)
	}
	if len(m.queued[w]) > 0 || !m.finished() {
		// Busy, stopped, or the call's outcome is not known yet: a rank
		// told to stop hears of no failure after, and would return nil
		// from a call that failed.
		return nil
	}
	m.stopped[w] = true
	if w == 0 {
		close(m.localWork)
		return nil
	}
	m.post(w, []byte{msgStop})
	return nil
}

// post starts sending msg to rank w. Sends are not waited for one by one:
// a large chunk waits for its receiver, which must not hold up the
// hand-out (nor hang it, should that rank have failed meanwhile).
func (m *master[In, Out]) post(w int, msg []byte) {
	m.sends = append(m.sends, sending{w, m.c.Isend(w, m.down, msg)})
}

// sent drops the sends that have completed, and returns the error of the
// first that failed.
func (m *master[In, Out]) sent() error {
	keep := m.sends[:0]
	var first error
	var lost []int
	for _, s := range m.sends {
		select {
		case <-s.r.Done():
			if _, err := s.r.Wait(m.qctx); errors.Is(err, mpi.ErrPeerLost) {
				lost = append(lost, s.to) // as its watch will say
			} else if err != nil && first == nil {
				first = fmt.Errorf("pool: sending to rank %d: %w", s.to, err)
			}
		default:
			keep = append(keep, s)
		}
	}
	clear(m.sends[len(keep):])
	m.sends = keep
	for _, w := range lost {
		if err := m.lose(w); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// sending is a send in progress.
type sending struct {
	to int
	r  *mpi.Request
}

// fail ends the call: it tells every rank still working why (raw, when
// given, is the failure message as a rank sent it; except is that rank),
// stops rank 0's own fn calls, and returns err.
func (m *master[In, Out]) fail(err error, except int, raw []byte) error {
	msg := raw
	if msg == nil {
		msg = appendFailure(err, 0)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.qctx), abortGrace)
	defer cancel()
	var reqs []*mpi.Request
	for w := 1; w < m.n; w++ {
		if !m.stopped[w] && w != except {
			reqs = append(reqs, m.c.Isend(w, m.down, msg))
		}
	}
	_ = mpi.WaitAll(ctx, reqs...)
	for _, r := range reqs {
		r.Cancel()
	}
	for _, s := range m.sends {
		s.r.Cancel()
	}
	m.sends = nil
	m.stopLocal(err)
	if m.ex != nil {
		m.ex.fail(err)
	}
	return err
}

// stopLocal ends rank 0's own share: its fn calls get their ctx canceled
// (unless it ended normally, cause nil), and it waits for them to return.
func (m *master[In, Out]) stopLocal(cause error) {
	if cause != nil {
		m.cancelRun(cause)
	}
	if !m.stopped[0] {
		m.stopped[0] = true
		close(m.localWork)
	}
	if !m.localEnd {
		for range m.localDone {
		}
		m.localEnd = true
	}
}

// runLocal runs the chunks rank 0 hands itself, until there are no more or
// one fails.
func (m *master[In, Out]) runLocal() {
	defer close(m.localDone)
	for ch := range m.localWork {
		outs, err := runChunk(m.runCtx, m.fn, ch.ins, ch.s.start, 0, m.ran)
		m.localDone <- localResult[Out]{ch.s, outs, err}
		if err != nil {
			return
		}
	}
}

// runChunk runs fn on the tasks ins, the first of which is task start, on
// rank, counting them in ran. It returns a *TaskError when fn fails or
// panics, or ctx's cause when ctx ends.
func runChunk[In, Out any](ctx context.Context, fn func(ctx context.Context, in In) (Out, error), ins []In, start, rank int, ran *atomic.Int64) ([]Out, error) {
	outs := make([]Out, len(ins))
	for j, in := range ins {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		out, err := call(ctx, fn, in)
		ran.Add(1)
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, &TaskError{Index: start + j, Rank: rank, Err: err}
		}
		outs[j] = out
	}
	return outs, nil
}
