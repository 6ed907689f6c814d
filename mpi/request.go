package mpi

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// Request is a non-blocking send or receive in progress, as returned by
// Isend and Irecv. Wait for it with Wait or WaitAll, or select on Done.
type Request struct {
	e    *engine
	c    *Comm
	comm uint64 // context id
	peer int    // send: destination world rank; receive: source world rank or AnySource
	tag  int
	data []byte // send: the caller's data; receive: the message, once complete
	id   uint64 // rendezvous message id
	off  int    // rendezvous: bytes streamed (send) or arrived (receive)

	sendState // a send's own
	recvState // a receive's own

	status Status
	err    error
	done   chan struct{}

	send     bool     // the kind: a send (sendState), or a receive (recvState)
	stage    reqStage // which of the engine's queues holds it, if one does
	finished bool     // done is closed: status and err are final

	inactive atomic.Bool // WaitAny, TestAny or WaitSome returned it: they skip it now (test.go)
}

// reqStage is where a request waits in the engine, if it waits anywhere
// but in the maps of rendezvous in progress (engine.sends, engine.recvs).
type reqStage uint8

const (
	stageNone    reqStage = iota // in no queue: starting, on the wire, or complete
	stagePosted                  // a receive in its communicator's match queue
	stageQueued                  // a send waiting for eager credit, in a peer's queue or the multicast queue
	stageCopying                 // a receive copying the message out of the sender's memory (copyOut runs)
)

// sendState is what only a send has.
type sendState struct {
	grants  []int   // multicast rendezvous: bytes granted by each world rank
	pulled  []uint8 // multicast rendezvous: single-copy state (pullNone...) by world rank
	readers int     // rendezvous: receivers copying it out of our memory now
	rdv     bool    // it goes as a rendezvous: announced with an RTS, then streamed or copied
	mcast   bool    // sent to every other rank with one publish
	counted bool    // counted in engine.inflight until it finishes
}

// recvState is what only a receive has.
type recvState struct {
	from       int    // rendezvous: the sender's world rank
	size       int    // rendezvous: the message's size
	granted    int    // rendezvous: bytes granted to the sender
	pull       offer  // rendezvous: the sender's offer, when copying it
	into       []byte // the caller's buffer (IrecvInto), when hasInto
	rendezvous bool   // it matched a rendezvous message, of size bytes from world rank from
	abandoned  bool   // its caller gave up after the match: the transfer runs on, its data dropped
	hasInto    bool
	standing   bool // it stays posted (internal/invariant.Standing)
}

// Single-copy state of a multicast send towards one rank.
const (
	pullNone    = iota // the rank takes chunks (or has not answered yet)
	pullWanted         // the rank will copy the message, once every rank has answered
	pullReading        // the rank is copying the message
	pullDone           // the rank has the message
)

func newRequest(c *Comm, send bool, comm uint64, peer, tag int, data []byte) *Request {
	return &Request{e: c.e, c: c, send: send, comm: comm, peer: peer, tag: tag, data: data, done: make(chan struct{})}
}

// failedRequest is a request that ended before it began, with err.
func failedRequest(err error) *Request {
	r := &Request{err: err, finished: true, done: make(chan struct{})}
	close(r.done)
	return r
}

// Wait blocks until the request completes or ctx is done. For a receive,
// the Status describes the message (its Count in bytes) and Data returns it;
// for a send, the Status is zero and the data may be reused. When ctx ends
// first, Wait returns an error wrapping ctx.Err() and the request goes on:
// Wait again, or Cancel it.
func (r *Request) Wait(ctx context.Context) (Status, error) {
	if ctx == nil {
		return Status{}, nilContext("wait")
	}
	opWait.Count(ctx)
	if r.c == nil {
		return r.wait(ctx, "Wait")
	}
	sp := r.c.span(ctx)
	st, err := r.wait(ctx, "Wait")
	if sp.t != nil {
		peer, n := r.peer, len(r.data)
		if peer >= 0 {
			peer = r.c.commRank(peer)
		}
		if !r.send && err == nil {
			peer, n = st.Source, st.Count
		}
		sp.end(r.c, "Wait", peer, r.tag, n)
	}
	return st, err
}

// wait is Wait, entered in the hang report as op when it must block.
func (r *Request) wait(ctx context.Context, op string) (Status, error) {
	select {
	case <-r.done:
		return r.status, r.err
	default:
	}
	if r.c != nil {
		if d, ok := r.c.e.tr.(drainer); ok && d.drain(r.done) {
			return r.status, r.err
		}
	}
	if !blocked.IsQuiet(ctx) {
		defer blocked.Enter(r.blockedCall(op)).Exit()
	} else {
		blocked.Parking(ctx)
	}
	select {
	case <-r.done:
		return r.status, r.err
	case <-ctx.Done():
		return Status{}, fmt.Errorf("mpi: wait: %w", ctx.Err())
	}
}

// Done returns a channel that is closed when the request completes.
func (r *Request) Done() <-chan struct{} { return r.done }

// Data returns a completed receive's message; nil before completion and
// for sends. The slice belongs to the caller.
func (r *Request) Data() []byte {
	select {
	case <-r.done:
		if r.send {
			return nil
		}
		return r.data
	default:
		return nil
	}
}

// Cancel withdraws the request if no data has moved yet: a receive still
// unmatched, a send still waiting for credit or for its receiver. Wait then
// returns an error wrapping ErrCanceled. It reports whether the request was
// withdrawn; a request already matched or complete runs to its end. Unlike
// MPI, a send to this rank itself (Isend or Issend) is never withdrawn: an
// Isend to itself is complete on return, whatever its size.
func (r *Request) Cancel() bool {
	if r.e == nil {
		return false
	}
	return r.e.cancel(r, ErrCanceled, false)
}

// finishWait is Wait for the blocking calls: when ctx ends first, the
// request is withdrawn (a matched receive is abandoned: its data dropped),
// so that nothing is left behind to match a later message.
func (r *Request) finishWait(ctx context.Context, op string) (Status, error) {
	st, err := r.wait(ctx, opNames[op])
	if err == nil || r.e == nil {
		return st, err
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		cerr := fmt.Errorf("mpi: %s: %w", op, ctx.Err())
		if r.e.cancel(r, cerr, true) {
			return Status{}, cerr
		}
		// It completed meanwhile, or a single copy is under way, which
		// takes milliseconds: wait for it. A send waits a bounded time, as
		// the receiver copying it may have died and never answer.
		if r.send {
			t := time.NewTimer(copyGrace)
			defer t.Stop()
			select {
			case <-r.done:
			case <-t.C:
				r.e.giveUp(r, cerr)
			}
		}
		<-r.done
		return r.status, r.err
	}
	return st, err
}

// opNames are the blocking calls' names in the hang report.
var opNames = map[string]string{
	"send": "Send", "recv": "Recv", "sendrecv": "Sendrecv", "recvinto": "RecvInto",
	"sendall": "SendAll", "split": "Split", "ssend": "Ssend",
}

// blockedCall describes r, waited for in op, for the hang report.
func (r *Request) blockedCall(op string) blocked.Call {
	if r.c == nil {
		return blocked.Call{Op: op, Comm: "?", Peer: blocked.None, PeerWorld: blocked.None, Tag: blocked.None, Root: blocked.None, Bytes: -1}
	}
	bc := blocked.Call{Op: op, Send: r.send, Comm: r.c.label(), Group: r.c.group, PeerWorld: r.peer, Peer: r.peer, Tag: r.tag, Root: blocked.None, Bytes: -1}
	if r.peer >= 0 {
		bc.Peer = r.c.commRank(r.peer)
	}
	if r.send {
		bc.Bytes = len(r.data)
	}
	if r.comm == r.c.internal() {
		// an exchange inside an mpi call (Split): the call is what counts
		bc.Tag = blocked.None
	}
	return bc
}

// copyGrace is how long a blocking send whose ctx has ended waits for a
// receiver that is copying it out of this rank's memory.
const copyGrace = 2 * time.Second

// WaitAll waits for every request. It returns nil when all succeeded, or the
// errors of those that failed, joined. When ctx ends first it returns an
// error wrapping ctx.Err(), and the requests go on.
func WaitAll(ctx context.Context, reqs ...*Request) error {
	if ctx == nil {
		return nilContext("wait all")
	}
	opWaitAll.Count(ctx)
	if len(reqs) > 0 && reqs[0].c != nil {
		defer reqs[0].c.span(ctx).end(reqs[0].c, "WaitAll", blocked.None, 0, 0)
	}
	var errs []error
	for _, r := range reqs {
		if _, err := r.wait(ctx, "WaitAll"); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
