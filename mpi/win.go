package mpi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// One-sided communication: windows of memory that other ranks read and
// write without the owner taking part (MPI's MPI_Win).
//
// Every rank serves its windows in the background: a goroutine per window
// answers the other ranks' requests on a communicator of the window's own (a
// Dup made by NewWin, so that a window's messages never match a receive of
// the program's), applying each under the window's lock. A rank busy
// computing, which calls nothing of gorun for seconds, still answers Puts
// and Gets at once (passive-target progress). Requests and replies are
// ordinary messages, so windows work over every transport, and a large Put
// or Get travels as requests of at most winChunk bytes each, each carried
// with the rendezvous and flow control of large messages.

// AccumulateOp is how Accumulate and FetchAndOp combine the data they
// carry with the target's elements: target = target (op) data.
type AccumulateOp int

// The accumulate operations. AccMin and AccMax are for integers and
// floats; AccBand, AccBor and AccBxor for integers only.
const (
	AccSum     AccumulateOp = iota + 1 // target + data
	AccProd                            // target * data
	AccMin                             // the smaller
	AccMax                             // the larger
	AccReplace                         // data (MPI_REPLACE)
	AccBand                            // target & data
	AccBor                             // target | data
	AccBxor                            // target ^ data
)

var accNames = [...]string{AccSum: "AccSum", AccProd: "AccProd", AccMin: "AccMin", AccMax: "AccMax",
	AccReplace: "AccReplace", AccBand: "AccBand", AccBor: "AccBor", AccBxor: "AccBxor"}

// String returns the operation's Go name ("AccSum").
func (op AccumulateOp) String() string {
	if op > 0 && int(op) < len(accNames) {
		return accNames[op]
	}
	return fmt.Sprintf("AccumulateOp(%d)", int(op))
}

// ErrWinFreed is returned by every call on a window after its Free.
var ErrWinFreed = errors.New("mpi: window freed")

// ErrWinRange is wrapped by the error of an access outside the target's
// window; the error names the target, the offset and the window's size.
var ErrWinRange = errors.New("mpi: access outside the window")

// winChunk is the most payload bytes one request or reply carries: a larger
// Put or Get is split into requests of this size, so that neither side
// holds more than one chunk of it at a time beyond the caller's buffer.
const winChunk = 4 << 20

// Tags on a window's communicator.
const (
	winReqTag   = 0  // requests to a window's server
	winSetupTag = 1  // NewWin's exchange of sizes
	winWatchTag = 2  // never sent: a server's receive from a lock holder, which fails when the holder is lost
	winFenceTag = 3  // Fence's rounds: winFenceTag+k for round k (at most 63 rounds)
	winReplyTag = 70 // replies use tags from here up, one per request
)

// Win is a window: n elements of T on every rank of a communicator (n may
// differ per rank), which every rank may read and update on any rank with
// Put, Get, Accumulate, FetchAndOp and CompareAndSwap. Each call completes
// before it returns: a Put has been applied on the target, a Get's buffer
// holds the data. Each element is updated atomically (two Accumulates of
// AccSum to one element from any ranks add both), and a call's elements are
// applied together, under the target window's lock, unseen by other calls
// half-way.
//
// Synchronisation follows MPI. Active target: Fence, called by every rank,
// separates epochs: what any rank did before its Fence is complete and
// visible everywhere after every rank's Fence. Passive target: Lock and
// Unlock on one target bracket an access epoch, exclusive (one rank at a
// time) or shared (many ranks, but no exclusive holder). gorun does not
// require calls inside an epoch: each call is atomic on its own; locks
// exclude only ranks that lock.
//
// Local returns this rank's own elements as plain memory. Other ranks'
// calls write that memory from the window's goroutine, so the program may
// read or write Local only where no other rank accesses it: between two
// Fences in which no rank accesses this rank's window, or while this rank
// holds an exclusive Lock on itself and the other ranks access it only
// inside their own Lock epochs.
//
// A Win is safe for use by many goroutines of its rank.
type Win[T Number] struct {
	c     *Comm // the window's own Dup
	sizes []int // elements exposed by each rank
	local []T

	mu     sync.Mutex // guards local against the server, and the fields below
	freed  bool
	flight []int         // calls in flight, by target
	idle   chan struct{} // closed and replaced when a call ends
	locks  []int8        // this rank's lock on each target: 0 none, lockPending, lockShared, lockExclusive
	fenced atomic.Bool   // a Fence or Free is running (they may not overlap)

	seq  atomic.Uint64 // reply tags
	srv  *winServer[T]
	kind reflect.Kind
}

const (
	lockPending   = -1
	lockShared    = 1
	lockExclusive = 2
)

// Request kinds, the first byte of a request.
const (
	wPut byte = iota + 1
	wGet
	wAcc
	wFetchOp
	wCAS
	wLock   // op: 1 exclusive, 0 shared
	wUnlock //
	wWithdraw
	wStop // a rank to its own server, at Free
)

// Reply status, the first byte of a reply.
const (
	rwOK        byte = iota + 1 // then the data, if any
	rwError                     // then the error's text
	rwLost                      // then the lost rank, uvarint: the lock's holder was lost
	rwWithdrawn                 // a Lock withdrawn before it was granted
)

// NewWin makes a window on c in which this rank exposes n elements of T,
// zeroed. It is collective: every rank of c calls it, in the same order as
// its other collective calls on c, with the same T and an n of its own (0
// is allowed: a rank that exposes nothing). It blocks until every rank has
// called it, and fails on every rank, naming the rank, if one passed a
// negative n or another element type.
func NewWin[T Number](ctx context.Context, c *Comm, n int) (*Win[T], error) {
	if ctx == nil {
		return nil, nilContext("NewWin")
	}
	if c == nil {
		return nil, errors.New("mpi: NewWin: nil communicator")
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	d, err := c.Dup(ctx)
	if err != nil {
		return nil, errorf("mpi: NewWin: %w", err)
	}
	d.quiet = true
	var zero T
	kind := reflect.TypeOf(zero).Kind()
	size := int(unsafe.Sizeof(zero))
	own := n
	if own < 0 {
		own = -1
	}
	me := binary.AppendVarint(nil, int64(own))
	me = binary.AppendUvarint(me, uint64(kind))
	me = binary.AppendUvarint(me, uint64(size))
	if d.Size() > 1 {
		if err := d.SendAll(ctx, winSetupTag, me); err != nil {
			return nil, errorf("mpi: NewWin: %w", err)
		}
	}
	sizes := make([]int, d.Size())
	var bad error
	for r := range d.Size() {
		b := me
		if r != d.Rank() {
			if b, _, err = d.Recv(ctx, r, winSetupTag); err != nil {
				return nil, errorf("mpi: NewWin: %w", err)
			}
		}
		v, k1 := binary.Varint(b)
		k, k2 := uint64(0), 0
		s, k3 := uint64(0), 0
		if k1 > 0 {
			k, k2 = binary.Uvarint(b[k1:])
			if k2 > 0 {
				s, k3 = binary.Uvarint(b[k1+k2:])
			}
		}
		switch {
		case k1 <= 0 || k2 <= 0 || k3 <= 0:
			return nil, fmt.Errorf("mpi: NewWin: a malformed message from rank %d: %w", r, ErrProtocol)
		case bad != nil:
		case v < 0:
			bad = fmt.Errorf("mpi: NewWin: rank %d exposes a negative number of elements", r)
		case reflect.Kind(k) != kind || int(s) != size:
			bad = fmt.Errorf("mpi: NewWin: rank %d makes a window of %v (%d-byte elements), rank %d of %v (%d-byte elements)",
				r, reflect.Kind(k), s, d.Rank(), kind, size)
		}
		sizes[r] = int(v)
	}
	if bad != nil {
		return nil, bad
	}
	w := &Win[T]{c: d, sizes: sizes, local: make([]T, n), flight: make([]int, d.Size()),
		idle: make(chan struct{}), locks: make([]int8, d.Size()), kind: kind}
	w.srv = newWinServer(w)
	go w.srv.serve()
	return w, nil
}

// Local returns this rank's exposed elements: the window's memory itself,
// not a copy. See Win for when the program may read or write it.
func (w *Win[T]) Local() []T { return w.local }

// Put writes data into target's window from element offset on. It returns
// once the target has applied it.
func (w *Win[T]) Put(ctx context.Context, target, offset int, data []T) error {
	if err := w.check(ctx, "Put", target, offset, len(data)); err != nil {
		return err
	}
	defer w.end(target)
	return w.chunked(ctx, "Put", target, offset, len(data), func(off, k int) []byte {
		msg := appendWinRequest(make([]byte, 0, winHeader+k*w.elemSize()), wPut, 0, 0, off, k)
		return append(msg, AsBytes(data[off-offset:off-offset+k])...)
	}, nil)
}

// Get reads len(buf) elements of target's window, from element offset on,
// into buf.
func (w *Win[T]) Get(ctx context.Context, target, offset int, buf []T) error {
	if err := w.check(ctx, "Get", target, offset, len(buf)); err != nil {
		return err
	}
	defer w.end(target)
	return w.chunked(ctx, "Get", target, offset, len(buf), func(off, k int) []byte {
		return appendWinRequest(nil, wGet, 0, 0, off, k)
	}, func(off, k int, b []byte) error {
		return w.decode("Get", target, b, buf[off-offset:off-offset+k])
	})
}

// winPipeline is how many requests of one large Put, Get or Accumulate
// may be in flight at once: enough to overlap one chunk's transfer with
// the target's work on the one before.
const winPipeline = 3

// chunked carries out a call on n elements from offset as requests of at
// most winChunk bytes, up to winPipeline of them in flight, and hands
// each reply to done (if not nil) in order.
func (w *Win[T]) chunked(ctx context.Context, op string, target, offset, n int, request func(off, k int) []byte, done func(off, k int, reply []byte) error) error {
	type flight struct {
		off, k int
		send   *Request
		reply  *Request
	}
	var q []flight
	finish := func(f flight) error {
		if _, err := f.send.Wait(ctx); err != nil {
			return w.wrap(op, target, err)
		}
		if _, err := f.reply.Wait(ctx); err != nil {
			return w.wrap(op, target, err)
		}
		b, err := w.parseReply(op, target, f.reply.Data())
		if err != nil {
			return w.wrap(op, target, err)
		}
		if done != nil {
			return done(f.off, f.k, b)
		}
		return nil
	}
	chunk := w.chunkElems()
	for off := offset; off < offset+n || len(q) > 0; {
		if off < offset+n && len(q) < winPipeline {
			k := min(offset+n-off, chunk)
			msg := request(off, k)
			tag := w.replyTag()
			putWinReplyTag(msg, tag)
			f := flight{off: off, k: k, reply: w.c.Irecv(target, tag)}
			f.send = w.c.Isend(target, winReqTag, msg)
			q = append(q, f)
			off += k
			continue
		}
		if err := finish(q[0]); err != nil {
			return err
		}
		q = q[1:]
	}
	return nil
}

// Accumulate combines data into target's window from element offset on:
// element i becomes element i (op) data[i], atomically for each element.
// It returns once the target has applied it.
func (w *Win[T]) Accumulate(ctx context.Context, target, offset int, data []T, op AccumulateOp) error {
	if err := w.checkOp("Accumulate", op); err != nil {
		return err
	}
	if err := w.check(ctx, "Accumulate", target, offset, len(data)); err != nil {
		return err
	}
	defer w.end(target)
	return w.chunked(ctx, "Accumulate", target, offset, len(data), func(off, k int) []byte {
		msg := appendWinRequest(make([]byte, 0, winHeader+k*w.elemSize()), wAcc, byte(op), 0, off, k)
		return append(msg, AsBytes(data[off-offset:off-offset+k])...)
	}, nil)
}

// FetchAndOp combines v into element offset of target's window, as
// Accumulate of one element, and returns the element's value before, in
// one atomic step.
func (w *Win[T]) FetchAndOp(ctx context.Context, target, offset int, v T, op AccumulateOp) (T, error) {
	var old [1]T
	if err := w.checkOp("FetchAndOp", op); err != nil {
		return old[0], err
	}
	if err := w.check(ctx, "FetchAndOp", target, offset, 1); err != nil {
		return old[0], err
	}
	defer w.end(target)
	msg := appendWinRequest(nil, wFetchOp, byte(op), 0, offset, 1)
	msg = append(msg, AsBytes([]T{v})...)
	b, err := w.call(ctx, "FetchAndOp", target, msg)
	if err == nil {
		err = w.decode("FetchAndOp", target, b, old[:])
	}
	return old[0], err
}

// CompareAndSwap sets element offset of target's window to new if it
// equals old (by ==: a NaN equals nothing), in one atomic step, and returns
// the value it found.
func (w *Win[T]) CompareAndSwap(ctx context.Context, target, offset int, old, new T) (T, error) {
	var found [1]T
	if err := w.check(ctx, "CompareAndSwap", target, offset, 1); err != nil {
		return found[0], err
	}
	defer w.end(target)
	msg := appendWinRequest(nil, wCAS, 0, 0, offset, 1)
	msg = append(msg, AsBytes([]T{old, new})...)
	b, err := w.call(ctx, "CompareAndSwap", target, msg)
	if err == nil {
		err = w.decode("CompareAndSwap", target, b, found[:])
	}
	return found[0], err
}

// Lock starts a passive-target access epoch on target: exclusive (no other
// rank holds a lock on target meanwhile) or shared (other ranks may hold
// shared locks, none an exclusive one). It blocks until granted; waiting
// ranks are granted in the order they asked. A rank holds at most one lock
// per target: Lock on a target it holds is an error. If the holder of the
// lock a rank waits for is lost (its world closed or cut off), the waiters
// get an error wrapping ErrPeerLost naming it, and the lock is free again.
// If ctx ends first, the request is withdrawn (and the lock released if it
// was granted meanwhile), and Lock returns ctx's error.
func (w *Win[T]) Lock(ctx context.Context, target int, exclusive bool) error {
	if err := w.check(ctx, "Lock", target, 0, 0); err != nil {
		return err
	}
	defer w.end(target)
	w.mu.Lock()
	if w.locks[target] != 0 {
		w.mu.Unlock()
		return fmt.Errorf("mpi: Lock: this rank holds or awaits a lock on rank %d already", target)
	}
	w.locks[target] = lockPending
	w.mu.Unlock()
	ex := byte(0)
	if exclusive {
		ex = 1
	}
	tag := w.replyTag()
	reply := w.c.Irecv(target, tag)
	err := w.c.Send(context.WithoutCancel(ctx), target, winReqTag, appendWinRequest(nil, wLock, ex, tag, 0, 0))
	if err != nil {
		reply.Cancel()
	} else {
		_, err = reply.Wait(ctx)
		if err != nil && ctx.Err() != nil {
			// Withdraw it: the server answers the Lock (granted) or the
			// withdrawal, and releases a lock granted meanwhile.
			if err = w.c.Send(context.WithoutCancel(ctx), target, winReqTag, appendWinRequest(nil, wWithdraw, 0, tag, 0, 0)); err == nil {
				if _, err = reply.Wait(blocked.Quiet(context.Background())); err == nil {
					err = fmt.Errorf("mpi: Lock: %w", ctx.Err())
				}
			}
		}
	}
	if err == nil {
		_, err = w.parseReply("Lock", target, reply.Data())
	}
	w.mu.Lock()
	w.locks[target] = 0
	if err == nil {
		w.locks[target] = lockShared
		if exclusive {
			w.locks[target] = lockExclusive
		}
	}
	w.mu.Unlock()
	if err != nil {
		return w.wrap("Lock", target, err)
	}
	return nil
}

// Unlock ends the access epoch on target that Lock began: every call this
// rank made on target is complete, and the lock goes to the next rank that
// waits. Unlock without a Lock on target is an error.
func (w *Win[T]) Unlock(ctx context.Context, target int) error {
	if err := w.check(ctx, "Unlock", target, 0, 0); err != nil {
		return err
	}
	defer w.end(target)
	w.mu.Lock()
	held := w.locks[target]
	if held > 0 {
		w.locks[target] = 0
	}
	w.mu.Unlock()
	if held <= 0 {
		return fmt.Errorf("mpi: Unlock: this rank holds no lock on rank %d (Unlock without Lock)", target)
	}
	if err := w.waitFlight(ctx, target, 1); err != nil {
		return err
	}
	_, err := w.call(ctx, "Unlock", target, appendWinRequest(nil, wUnlock, 0, 0, 0, 0))
	return err
}

// Flush blocks until every call this rank made on target is complete on
// target (calls other goroutines of the rank have in flight included).
func (w *Win[T]) Flush(ctx context.Context, target int) error {
	if err := w.check(ctx, "Flush", target, 0, 0); err != nil {
		return err
	}
	defer w.end(target)
	return w.waitFlight(ctx, target, 1)
}

// Fence separates two epochs of active-target access. It is collective:
// every rank of the window calls it, and it returns once every call that
// any rank made before its Fence is complete, so that what they wrote is
// seen by every rank after, in its Local and by its Gets. A Fence whose ctx
// ends part-way leaves the window's Fences unusable.
func (w *Win[T]) Fence(ctx context.Context) error {
	if err := w.collective(ctx, "Fence"); err != nil {
		return err
	}
	defer w.fenced.Store(false)
	return w.barrier(ctx, "Fence")
}

// Free releases the window. It is collective: every rank calls it, once
// every call on the window anywhere is done; it returns once every rank has
// called it, after which every call on the window returns ErrWinFreed.
// Locks still held are dropped with the window.
func (w *Win[T]) Free(ctx context.Context) error {
	if err := w.collective(ctx, "Free"); err != nil {
		return err
	}
	defer w.fenced.Store(false)
	if err := w.barrier(ctx, "Free"); err != nil {
		return err
	}
	w.mu.Lock()
	w.freed = true
	w.mu.Unlock()
	// Every rank's calls are done: no request comes any more.
	if err := w.c.Send(blocked.Quiet(context.Background()), w.c.Rank(), winReqTag, []byte{wStop}); err != nil {
		return errorf("mpi: Free: %w", err)
	}
	<-w.srv.done
	return nil
}

// collective checks a Fence or a Free before it begins, and waits until
// this rank's calls are done.
func (w *Win[T]) collective(ctx context.Context, op string) error {
	if ctx == nil {
		return nilContext(op)
	}
	w.mu.Lock()
	freed := w.freed
	w.mu.Unlock()
	if freed {
		return fmt.Errorf("mpi: %s: %w", op, ErrWinFreed)
	}
	if !w.fenced.CompareAndSwap(false, true) {
		return fmt.Errorf("mpi: %s: another Fence or Free of this window is running on this rank", op)
	}
	if err := w.waitFlight(ctx, -1, 0); err != nil {
		w.fenced.Store(false)
		return err
	}
	return nil
}

// barrier is a dissemination barrier on the window's communicator: in round
// k each rank sends to rank+2^k and receives from rank-2^k.
func (w *Win[T]) barrier(ctx context.Context, op string) error {
	n, me := w.c.Size(), w.c.Rank()
	for k, dist := 0, 1; dist < n; k, dist = k+1, dist*2 {
		if _, _, err := w.c.Sendrecv(ctx, (me+dist)%n, winFenceTag+k, nil, (me-dist+n)%n, winFenceTag+k); err != nil {
			return errorf("mpi: %s: %w", op, err)
		}
	}
	return nil
}

// check validates a call's arguments before it begins, and counts it in
// flight to target (end counts it out).
func (w *Win[T]) check(ctx context.Context, op string, target, offset, n int) error {
	if ctx == nil {
		return nilContext(op)
	}
	if target < 0 || target >= len(w.sizes) {
		return errorf("mpi: %s: target rank %d not in [0, %d): %w", op, target, len(w.sizes), ErrRank)
	}
	if size := w.sizes[target]; offset < 0 || n < 0 || offset > size || n > size-offset {
		return errorf("mpi: %s: offset %d, %d elements, on rank %d, whose window has %d elements: %w",
			op, offset, n, target, size, ErrWinRange)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mpi: %s: %w", op, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.freed {
		return fmt.Errorf("mpi: %s: %w", op, ErrWinFreed)
	}
	w.flight[target]++
	return nil
}

// end counts a call to target out of flight.
func (w *Win[T]) end(target int) {
	w.mu.Lock()
	w.flight[target]--
	close(w.idle)
	w.idle = make(chan struct{})
	w.mu.Unlock()
}

// waitFlight waits until at most upto calls are in flight to target (every
// target for -1): upto counts the caller itself.
func (w *Win[T]) waitFlight(ctx context.Context, target, upto int) error {
	for {
		w.mu.Lock()
		busy := false
		for t, n := range w.flight {
			if (target < 0 || t == target) && n > upto {
				busy = true
			}
		}
		idle := w.idle
		w.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("mpi: flush: %w", ctx.Err())
		}
	}
}

func (w *Win[T]) checkOp(op string, acc AccumulateOp) error {
	if err := accValid(w.kind, acc); err != nil {
		return fmt.Errorf("mpi: %s: %w", op, err)
	}
	return nil
}

func (w *Win[T]) chunkElems() int { return winChunk / w.elemSize() }

func (w *Win[T]) elemSize() int {
	var zero T
	return int(unsafe.Sizeof(zero))
}

func (w *Win[T]) replyTag() int {
	return winReplyTag + int(w.seq.Add(1)%uint64(MaxTag-winReplyTag))
}

// call sends one request to target's server and returns its reply's data.
// The reply's receive is posted before the request leaves, and is left
// posted if ctx ends first (so that the server never waits for a receiver
// that went away).
func (w *Win[T]) call(ctx context.Context, op string, target int, msg []byte) ([]byte, error) {
	tag := w.replyTag()
	putWinReplyTag(msg, tag)
	reply := w.c.Irecv(target, tag)
	if err := w.c.Send(context.WithoutCancel(ctx), target, winReqTag, msg); err != nil {
		reply.Cancel()
		return nil, w.wrap(op, target, err)
	}
	if _, err := reply.Wait(ctx); err != nil {
		return nil, w.wrap(op, target, err)
	}
	b, err := w.parseReply(op, target, reply.Data())
	if err != nil {
		return nil, w.wrap(op, target, err)
	}
	return b, nil
}

func (w *Win[T]) wrap(op string, target int, err error) error {
	var re *RankError
	if errors.As(err, &re) || errors.Is(err, ErrWinRange) || errors.Is(err, ErrProtocol) {
		return err
	}
	return &RankError{Rank: target, Op: op, Err: err}
}

// parseReply returns a reply's data, or the error it carries.
func (w *Win[T]) parseReply(op string, target int, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("mpi: %s: an empty reply from rank %d: %w", op, target, ErrProtocol)
	}
	switch b[0] {
	case rwOK:
		return b[1:], nil
	case rwError:
		return nil, errors.New(string(b[1:]))
	case rwLost:
		r, k := binary.Uvarint(b[1:])
		if k <= 0 {
			break
		}
		return nil, &RankError{Rank: int(r), Op: op, Err: errorf("the holder of rank %d's lock: %w", target, ErrPeerLost)}
	case rwWithdrawn:
		return nil, ErrCanceled
	}
	return nil, fmt.Errorf("mpi: %s: a malformed reply from rank %d: %w", op, target, ErrProtocol)
}

// decode copies a reply's elements into buf.
func (w *Win[T]) decode(op string, target int, b []byte, buf []T) error {
	if len(b) != len(buf)*w.elemSize() {
		return fmt.Errorf("mpi: %s: rank %d sent %d bytes for %d elements: %w", op, target, len(b), len(buf), ErrProtocol)
	}
	if littleEndian {
		copy(AsBytes(buf), b)
		return nil
	}
	got, err := FromBytes[T](b)
	if err != nil {
		return err
	}
	copy(buf, got)
	return nil
}

// A request: a header of winHeader bytes (kind, op, two bytes of
// padding, the reply tag as a little-endian uint32, then offset and count
// as little-endian uint64s), then the data: 8-byte aligned in the
// receiver's buffer, so that it is used there without a copy.
const winHeader = 24

func appendWinRequest(b []byte, kind, op byte, tag, offset, count int) []byte {
	b = append(b, kind, op, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(tag))
	b = binary.LittleEndian.AppendUint64(b, uint64(offset))
	return binary.LittleEndian.AppendUint64(b, uint64(count))
}

func putWinReplyTag(b []byte, tag int) { binary.LittleEndian.PutUint32(b[4:], uint32(tag)) }

type winRequest struct {
	kind, op      byte
	tag           int
	offset, count int
	data          []byte
}

func parseWinRequest(b []byte) (winRequest, bool) {
	var q winRequest
	if len(b) == 1 && b[0] == wStop {
		q.kind = wStop
		return q, true
	}
	if len(b) < winHeader {
		return q, false
	}
	q.kind, q.op = b[0], b[1]
	q.tag = int(binary.LittleEndian.Uint32(b[4:]))
	off, cnt := binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
	if off > 1<<62 || cnt > 1<<62 || q.tag < winReplyTag {
		return q, false
	}
	q.offset, q.count, q.data = int(off), int(cnt), b[winHeader:]
	return q, true
}
