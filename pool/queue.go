package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/mpi"
)

// A Queue is Python's multiprocessing.Queue across the ranks of a
// communicator: any rank may Put to it and Get from it, from any number of
// goroutines, and every item put is got exactly once, by one rank. Items
// from one producer (one rank putting from one goroutine) come out in the
// order it put them; items of different producers interleave.
//
// One rank, the owner (rank 0 unless Owner says otherwise), holds the items
// and serves every rank's Put and Get, its own included, in a goroutine of
// its own, over a Dup of the communicator: the queue's messages never match
// a receive of the program's. Each Put and Get is one round trip to the
// owner. With MaxSize(n) the owner holds at most n items and a Put blocks
// while the queue is full (the waiting item stays in the owner's memory,
// one per blocked Put); by default the queue is unbounded.
//
// The end: every rank calls Close once it will put no more (a rank that
// only consumes calls it at once). When every rank has closed and the last
// item has been got, Get returns ErrQueueClosed on every rank, and the
// queue's goroutines end. A queue that never ends this way lives until the
// communicator's world is closed.
//
// With Joinable, it is also multiprocessing's JoinableQueue: a consumer
// calls TaskDone for each item it got once it has dealt with it, and Join
// blocks until every item put so far is done.
//
// Every rank of the communicator must call NewQueue (it is collective), in
// the same order as its other collective calls on the communicator.
type Queue[T any] struct {
	c        *mpi.Comm // the queue's own Dup
	owner    int
	joinable bool

	mu      sync.Mutex
	next    uint64                 // the last request id
	waiting map[uint64]chan qReply // requests waiting for their reply, by id
	closed  bool                   // this rank called Close
	ended   error                  // the queue ended (ErrQueueClosed) or failed: every call returns it
	done    chan struct{}          // closed when the mailbox ends, after ended is set
}

// ErrQueueClosed is returned by Get once every rank has closed the queue
// and it is empty, and by Put after this rank's Close.
var ErrQueueClosed = errors.New("pool: queue closed")

// A QueueOption changes a Queue at NewQueue. Every rank must pass the same
// options.
type QueueOption func(*queueConfig) error

type queueConfig struct {
	owner, maxSize int
	joinable       bool
}

// Owner makes rank the queue's owner, which holds the items and serves the
// requests (by default rank 0). Give it to a rank with memory and a core to
// spare when the queue is busy.
func Owner(rank int) QueueOption {
	return func(cfg *queueConfig) error {
		cfg.owner = rank
		return nil
	}
}

// MaxSize bounds the queue to n items: a Put blocks while n items wait to
// be got. n = 0 (the default) is unbounded, as multiprocessing's maxsize.
func MaxSize(n int) QueueOption {
	return func(cfg *queueConfig) error {
		if n < 0 {
			return fmt.Errorf("pool: MaxSize(%d): must not be negative", n)
		}
		cfg.maxSize = n
		return nil
	}
}

// Joinable makes the queue a JoinableQueue: it counts the items put and
// not yet marked done with TaskDone, Join waits for that count to be zero,
// and the queue ends (Get returns ErrQueueClosed) only once every item is
// done too. Without it, TaskDone and Join return an error.
func Joinable() QueueOption {
	return func(cfg *queueConfig) error {
		cfg.joinable = true
		return nil
	}
}

// Tags on the queue's Dup: requests to the owner, replies from it.
const (
	qRequestTag = 0
	qReplyTag   = 1
)

// Requests (a rank to the owner): kind, the request's id as a uvarint, and
// for qPut the item's wire form (mpi.AppendValue). qCancel's id is the
// request it cancels; qClose's is 0.
const (
	qPut byte = iota + 1
	qGet
	qCancel
	qClose
	qTaskDone
	qJoin
)

// Replies (the owner to a rank): kind and the request's id, and for rItem
// the item. rEnd (id 0) is the last message the owner sends to a rank.
const (
	rOK       byte = iota + 1 // the Put is in the queue
	rItem                     // the Get's item
	rCanceled                 // the request was withdrawn, as its qCancel asked
	rClosed                   // a Put after its rank's Close
	rEnd                      // every rank closed and the queue is empty
	rTooMany                  // a TaskDone with no item left to be done
)

// qReply is a reply as a waiting request gets it, or the error that ended
// the queue.
type qReply struct {
	kind byte
	data []byte
	err  error
}

func qMessage(kind byte, id uint64, extra int) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+extra)
	return binary.AppendUvarint(append(b, kind), id)
}

func qParse(b []byte) (kind byte, id uint64, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, 0, nil, false
	}
	id, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return 0, 0, nil, false
	}
	return b[0], id, b[1+n:], true
}

// NewQueue makes a queue of T on c. Every rank of c must call it with the
// same options; it blocks until every rank has (it agrees on the options
// with an Allreduce), and returns an error on every rank naming what
// differs if the options do, or if the owner is not a rank of c.
func NewQueue[T any](ctx context.Context, c *mpi.Comm, opts ...QueueOption) (*Queue[T], error) {
	if ctx == nil {
		return nil, fmt.Errorf("pool: NewQueue: %w", mpi.ErrNilContext)
	}
	if c == nil {
		return nil, errors.New("pool: NewQueue: nil communicator")
	}
	var cfg queueConfig
	var bad error
	for _, o := range opts {
		if err := o(&cfg); err != nil && bad == nil {
			bad = err
		}
	}
	ok := int64(1)
	if bad != nil {
		ok = 0
	}
	own, limit, join := int64(cfg.owner), int64(cfg.maxSize), int64(0)
	if cfg.joinable {
		join = 1
	}
	agreed, err := collectives.Allreduce(ctx, c, []int64{own, -own, limit, -limit, -ok, join, -join}, collectives.Max)
	if err != nil {
		return nil, fmt.Errorf("pool: NewQueue: %w", err)
	}
	switch {
	case bad != nil:
		return nil, fmt.Errorf("pool: NewQueue: %w", bad)
	case agreed[4] != -1:
		return nil, errors.New("pool: NewQueue: another rank passed a bad option")
	case agreed[0] != -agreed[1]:
		return nil, fmt.Errorf("pool: NewQueue: ranks pass different owners (%d and %d)", -agreed[1], agreed[0])
	case agreed[2] != -agreed[3]:
		return nil, fmt.Errorf("pool: NewQueue: ranks pass different MaxSize (%d and %d)", -agreed[3], agreed[2])
	case agreed[5] != -agreed[6]:
		return nil, errors.New("pool: NewQueue: some ranks pass Joinable and some do not")
	case cfg.owner < 0 || cfg.owner >= c.Size():
		return nil, fmt.Errorf("pool: NewQueue: Owner(%d) not in [0, %d): %w", cfg.owner, c.Size(), mpi.ErrRank)
	}
	d, err := c.Dup(blocked.Quiet(ctx)) // the queue's goroutines are not the program's calls
	if err != nil {
		return nil, fmt.Errorf("pool: NewQueue: %w", err)
	}
	blocked.QuietComm(d)
	q := &Queue[T]{c: d, owner: cfg.owner, joinable: cfg.joinable, waiting: map[uint64]chan qReply{}, done: make(chan struct{})}
	if d.Rank() == cfg.owner {
		s := &qServer{c: d, maxSize: cfg.maxSize, joinable: cfg.joinable, closed: make([]bool, d.Size())}
		go s.serve()
	}
	go q.mailbox()
	return q, nil
}

// Put adds v to the queue. It blocks while the queue is full (MaxSize),
// and until the owner has it. It returns ErrQueueClosed after this rank's
// Close; ctx's error (wrapped) if ctx ends first, and then v is not in the
// queue; an error from encoding/gob for a value it cannot encode; and the
// communicator's error (mpi.ErrPeerLost for a lost owner, mpi.ErrClosed)
// if it fails.
func (q *Queue[T]) Put(ctx context.Context, v T) error {
	b, err := mpi.AppendValue(make([]byte, 0, 64), v)
	if err != nil {
		return fmt.Errorf("pool: Queue.Put: %w", err)
	}
	r, err := q.request(ctx, qPut, b)
	if err != nil {
		return fmt.Errorf("pool: Queue.Put: %w", err)
	}
	if r.kind == rClosed {
		return fmt.Errorf("pool: Queue.Put: %w", ErrQueueClosed)
	}
	return nil
}

// Get removes the oldest item of the queue and returns it. It blocks while
// the queue is empty. It returns ErrQueueClosed (unwrapped) once every rank
// has closed the queue and it is empty; ctx's error (wrapped) if ctx ends
// first, and then no item was taken; an error if the item does not decode
// as a T (a Put of another type); and the communicator's error if it fails.
func (q *Queue[T]) Get(ctx context.Context) (T, error) {
	var zero T
	r, err := q.request(ctx, qGet, nil)
	if err != nil {
		if errors.Is(err, ErrQueueClosed) {
			return zero, ErrQueueClosed
		}
		return zero, fmt.Errorf("pool: Queue.Get: %w", err)
	}
	v, err := mpi.DecodeValue[T](r.data)
	if err != nil {
		return zero, fmt.Errorf("pool: Queue.Get: %w", err)
	}
	return v, nil
}

// Close says that this rank will put nothing more: a Put after it returns
// ErrQueueClosed. Once every rank has closed the queue and it is empty, Get
// returns ErrQueueClosed everywhere. Items this rank put before are still
// got. Close sends one small message to the owner and does not wait for an
// answer; it is safe to call more than once (later calls do nothing).
func (q *Queue[T]) Close() error {
	q.mu.Lock()
	if q.closed || q.ended != nil {
		q.closed = true
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	if err := q.c.Send(context.Background(), q.owner, qRequestTag, qMessage(qClose, 0, 0)); err != nil {
		return fmt.Errorf("pool: Queue.Close: %w", err)
	}
	return nil
}

// TaskDone says that an item this rank got is dealt with (Joinable
// queues only). It blocks for one round trip to the owner. It returns an
// error if the queue is not Joinable, or if every item put is done already
// (more TaskDone calls than items, as JoinableQueue's ValueError); ctx's
// error (wrapped) if ctx ends first, and then the item is still counted as
// not done; and the communicator's error if it fails.
func (q *Queue[T]) TaskDone(ctx context.Context) error {
	if !q.joinable {
		return errors.New("pool: Queue.TaskDone: the queue is not Joinable")
	}
	r, err := q.request(ctx, qTaskDone, nil)
	if errors.Is(err, ErrQueueClosed) || err == nil && r.kind == rTooMany {
		return errors.New("pool: Queue.TaskDone: called more times than items were put")
	}
	if err != nil {
		return fmt.Errorf("pool: Queue.TaskDone: %w", err)
	}
	return nil
}

// Join blocks until every item put so far (by any rank) has been got and
// marked done with TaskDone (Joinable queues only). It returns nil at once
// once the queue has ended; an error if the queue is not Joinable; ctx's
// error (wrapped) if ctx ends first; and the communicator's error if it
// fails.
func (q *Queue[T]) Join(ctx context.Context) error {
	if !q.joinable {
		return errors.New("pool: Queue.Join: the queue is not Joinable")
	}
	_, err := q.request(ctx, qJoin, nil)
	if err != nil && !errors.Is(err, ErrQueueClosed) {
		return fmt.Errorf("pool: Queue.Join: %w", err)
	}
	return nil
}

// request sends a request of kind with payload to the owner and returns its
// reply. If ctx ends first, it withdraws the request: it returns ctx's
// error if the owner withdrew it, and the reply if the owner had answered
// already (the Put or Get happened, and is not undone).
func (q *Queue[T]) request(ctx context.Context, kind byte, payload []byte) (qReply, error) {
	if ctx == nil {
		return qReply{}, mpi.ErrNilContext
	}
	if err := ctx.Err(); err != nil {
		return qReply{}, err
	}
	q.mu.Lock()
	if q.ended != nil {
		q.mu.Unlock()
		return qReply{}, q.ended
	}
	if kind == qPut && q.closed {
		q.mu.Unlock()
		return qReply{kind: rClosed}, nil
	}
	q.next++
	id := q.next
	ch := make(chan qReply, 1)
	q.waiting[id] = ch
	q.mu.Unlock()
	msg := append(qMessage(kind, id, len(payload)), payload...)
	// Sent whatever ctx does: a request half sent could be served with no
	// one to take the answer.
	if err := q.c.Send(context.WithoutCancel(ctx), q.owner, qRequestTag, msg); err != nil {
		q.mu.Lock()
		delete(q.waiting, id)
		q.mu.Unlock()
		return qReply{}, q.sendFailed(err)
	}
	select {
	case r := <-ch:
		return r, r.err
	case <-ctx.Done():
	}
	// Withdraw it; the owner answers either the request or the cancel,
	// never both, and at once.
	if err := q.c.Send(context.WithoutCancel(ctx), q.owner, qRequestTag, qMessage(qCancel, id, 0)); err != nil {
		return qReply{}, q.sendFailed(err)
	}
	r := <-ch
	if r.err != nil || r.kind == rCanceled {
		return qReply{}, ctx.Err()
	}
	return r, nil
}

// sendFailed returns the error of a request whose send to the owner failed
// with err. The owner may have left because the queue ended: its last
// message, which tells so, comes before the news that it left, so the
// mailbox ends at once either way; if the queue ended, that is the error.
func (q *Queue[T]) sendFailed(err error) error {
	<-q.done
	if errors.Is(q.ended, ErrQueueClosed) {
		return ErrQueueClosed
	}
	return err
}

// mailbox takes the owner's replies to this rank and hands each to the
// request waiting for it, until the queue ends or the communicator fails.
func (q *Queue[T]) mailbox() {
	ctx := blocked.Quiet(context.Background())
	for {
		b, _, err := q.c.Recv(ctx, q.owner, qReplyTag)
		var kind byte
		var id uint64
		var rest []byte
		if err == nil {
			var ok bool
			if kind, id, rest, ok = qParse(b); !ok {
				err = fmt.Errorf("a malformed reply from the owner, rank %d", q.owner)
			}
		}
		if err != nil || kind == rEnd {
			if err == nil {
				err = ErrQueueClosed
			}
			q.end(err)
			return
		}
		q.mu.Lock()
		ch := q.waiting[id]
		delete(q.waiting, id)
		q.mu.Unlock()
		if ch != nil {
			ch <- qReply{kind: kind, data: rest}
		}
	}
}

// end fails every waiting request and every later one with err.
func (q *Queue[T]) end(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ended = err
	for id, ch := range q.waiting {
		ch <- qReply{err: err}
		delete(q.waiting, id)
	}
	close(q.done)
}

// qServer is the owner's side: the items, and the requests that wait.
type qServer struct {
	c          *mpi.Comm
	maxSize    int
	joinable   bool
	unfinished int       // Joinable: items put and not yet done
	joins      []qWaiter // Joins waiting for unfinished to be 0
	items      [][]byte  // wire forms, oldest first, from head on
	head       int       // items[:head] are gone
	puts       []qWaiter // Puts waiting for room, oldest first
	gets       []qWaiter // Gets waiting for an item, oldest first
	closed     []bool    // by rank
	nclosed    int
}

// qWaiter is a request the owner has not answered yet.
type qWaiter struct {
	src  int
	id   uint64
	data []byte // a Put's item
}

// serve answers requests until every rank has closed the queue and it is
// empty (and, Joinable, every item is done), then tells every rank and
// returns; or until the communicator fails.
func (s *qServer) serve() {
	ctx := blocked.Quiet(context.Background())
	for {
		b, st, err := s.c.Recv(ctx, mpi.AnySource, qRequestTag)
		if err != nil {
			return // the communicator failed: every rank's mailbox sees it too
		}
		kind, id, rest, ok := qParse(b)
		if !ok {
			continue // not a request of ours: ignore it
		}
		src := st.Source
		switch kind {
		case qPut:
			switch {
			case s.closed[src]:
				s.reply(src, rClosed, id, nil)
			case len(s.gets) > 0: // a Get waits: the queue is empty
				g := s.gets[0]
				s.gets = s.gets[1:]
				s.reply(g.src, rItem, g.id, rest)
				s.reply(src, rOK, id, nil)
				s.unfinished++
			case s.maxSize > 0 && s.len() >= s.maxSize:
				s.puts = append(s.puts, qWaiter{src, id, rest})
			default:
				s.items = append(s.items, rest)
				s.reply(src, rOK, id, nil)
				s.unfinished++
			}
		case qGet:
			if s.len() == 0 {
				s.gets = append(s.gets, qWaiter{src: src, id: id})
				break
			}
			item := s.items[s.head]
			s.items[s.head] = nil
			s.head++
			if s.head > len(s.items)/2 {
				s.items = append(s.items[:0], s.items[s.head:]...)
				s.head = 0
			}
			s.reply(src, rItem, id, item)
			if len(s.puts) > 0 { // room for the oldest waiting Put
				p := s.puts[0]
				s.puts = s.puts[1:]
				s.items = append(s.items, p.data)
				s.reply(p.src, rOK, p.id, nil)
				s.unfinished++
			}
		case qCancel:
			if s.withdraw(&s.puts, src, id) || s.withdraw(&s.gets, src, id) || s.withdraw(&s.joins, src, id) {
				s.reply(src, rCanceled, id, nil)
			} // else answered already: the answer is on its way
		case qTaskDone:
			if s.unfinished == 0 {
				s.reply(src, rTooMany, id, nil)
				break
			}
			s.unfinished--
			s.reply(src, rOK, id, nil)
			if s.unfinished == 0 {
				for _, j := range s.joins {
					s.reply(j.src, rOK, j.id, nil)
				}
				s.joins = nil
			}
		case qJoin:
			if s.unfinished == 0 {
				s.reply(src, rOK, id, nil)
			} else {
				s.joins = append(s.joins, qWaiter{src: src, id: id})
			}
		case qClose:
			if !s.closed[src] {
				s.closed[src] = true
				s.nclosed++
			}
		}
		if s.nclosed == len(s.closed) && s.len() == 0 && len(s.puts) == 0 && (!s.joinable || s.unfinished == 0) {
			for r := range s.c.Size() {
				s.reply(r, rEnd, 0, nil)
			}
			return
		}
	}
}

func (s *qServer) len() int { return len(s.items) - s.head }

// withdraw removes the request (src, id) from ws, and reports whether it
// was there.
func (s *qServer) withdraw(ws *[]qWaiter, src int, id uint64) bool {
	for i, w := range *ws {
		if w.src == src && w.id == id {
			*ws = append((*ws)[:i], (*ws)[i+1:]...)
			return true
		}
	}
	return false
}

// reply sends a reply to rank dst. A rank that left cannot take it: its
// error is dropped (the item of a Get to a lost rank is lost with it).
func (s *qServer) reply(dst int, kind byte, id uint64, data []byte) {
	msg := append(qMessage(kind, id, len(data)), data...)
	_ = s.c.Send(blocked.Quiet(context.Background()), dst, qReplyTag, msg)
}
