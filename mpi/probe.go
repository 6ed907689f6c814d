package mpi

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// ProcNull is MPI's null process. As the peer of Send, Isend, Ssend,
// Issend, Recv, Irecv, RecvInto, IrecvInto, Sendrecv, SendSlice,
// RecvSlice, SendValue, RecvValue, Probe, Iprobe, Mprobe and Improbe it
// makes the call complete at once, moving nothing: a receive's Status has
// Source ProcNull, Tag AnyTag and Count 0, and its data is nil (RecvValue
// gives the zero value). A shift at the edge of a non-periodic grid names
// it, so that the same code runs at the edge and inside.
const ProcNull = -2

// procNullStatus is the Status of a receive or probe from ProcNull.
var procNullStatus = Status{Source: ProcNull, Tag: AnyTag}

// nullRequest is a request with ProcNull, complete at once.
func nullRequest(c *Comm, send bool) *Request {
	r := &Request{c: c, send: send, peer: ProcNull, finished: true, done: make(chan struct{})}
	if !send {
		r.status = procNullStatus
	}
	close(r.done)
	return r
}

// Iprobe reports, without blocking, whether a message that Recv(ctx, src,
// tag) would return has arrived, and describes it (Count in bytes) without
// receiving it. Errors are Probe's.
func (c *Comm) Iprobe(src, tag int) (Status, bool, error) {
	if err := c.validRecv("iprobe", src, tag); err != nil {
		return Status{}, false, err
	}
	if src == ProcNull {
		return procNullStatus, true, nil
	}
	wsrc := src
	if src != AnySource {
		wsrc = c.worldRank(src)
	}
	st, ok, _, err := c.e.probe(c, c.id, wsrc, tag)
	return st, ok, err
}

// Message is a message matched by Mprobe or Improbe: it no longer matches
// any receive or probe, and only its Recv can take it.
type Message struct {
	c     *Comm
	v     *envelope // nil for ProcNull
	taken atomic.Bool
}

// Mprobe blocks until a message that Recv(ctx, src, tag) would return has
// arrived, and takes it out of matching: no other receive or probe sees it
// again, and the returned Message's Recv receives it. Two goroutines that
// probe AnySource and receive through their own Messages can never take
// the same message, unlike Probe followed by Recv. A large message's data
// stays at its sender until Recv. When ctx ends first, Mprobe returns an
// error wrapping ctx.Err() and takes nothing. With ProcNull it returns at
// once a Message whose Recv gives nil.
func (c *Comm) Mprobe(ctx context.Context, src, tag int) (*Message, Status, error) {
	if ctx == nil {
		return nil, Status{}, nilContext("mprobe")
	}
	defer c.span(ctx).end(c, "Mprobe", src, tag, 0)
	for entered := false; ; {
		m, st, ok, wait, err := c.improbe("mprobe", src, tag)
		if err != nil || ok {
			return m, st, err
		}
		if !entered && blocked.IsQuiet(ctx) {
			entered = true
			blocked.Parking(ctx)
		} else if !entered {
			entered = true
			bc := blocked.Call{Op: "Mprobe", Comm: c.label(), Group: c.group, Peer: src, PeerWorld: src, Tag: tag, Root: blocked.None, Bytes: -1}
			if src >= 0 {
				bc.PeerWorld = c.worldRank(src)
			}
			defer blocked.Enter(bc).Exit()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, Status{}, fmt.Errorf("mpi: mprobe: %w", ctx.Err())
		}
	}
}

// Improbe is Mprobe that never blocks: when no matching message has
// arrived it returns false and takes nothing.
func (c *Comm) Improbe(src, tag int) (*Message, Status, bool, error) {
	m, st, ok, _, err := c.improbe("improbe", src, tag)
	return m, st, ok, err
}

func (c *Comm) improbe(op string, src, tag int) (*Message, Status, bool, <-chan struct{}, error) {
	if err := c.validRecv(op, src, tag); err != nil {
		return nil, Status{}, false, nil, err
	}
	if src == ProcNull {
		return &Message{c: c}, procNullStatus, true, nil, nil
	}
	wsrc := src
	if src != AnySource {
		wsrc = c.worldRank(src)
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, Status{}, false, nil, e.err
	}
	q := e.queue(c.id)
	for i, v := range q.unexpected {
		if matches(wsrc, tag, v.src, v.tag) {
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			if v.rts {
				if e.probed == nil {
					e.probed = make(map[xferKey]*envelope)
				}
				e.probed[xferKey{v.src, v.id}] = v
			}
			return &Message{c: c, v: v}, Status{Source: c.commRank(v.src), Tag: v.tag, Count: v.count()}, true, nil, nil
		}
	}
	if w, lost := e.lost(c, src); lost {
		return nil, Status{}, false, nil, e.waitLost(c, c.id, tag, w, &RankError{Rank: c.commRank(w), Op: op, Err: e.lostErr(w)})
	}
	return nil, Status{}, false, e.arrived, nil
}

// Recv receives the matched message; the slice belongs to the caller. It
// blocks only for a large message, while its data comes from the sender;
// if the sender withdrew that message after Mprobe matched it (a canceled
// Issend, an Ssend whose ctx ended) Recv returns an error wrapping
// ErrCanceled, and if the sender is gone one wrapping ErrPeerLost. A second
// Recv on one Message is an error, as is Recv on a nil Message.
func (m *Message) Recv() ([]byte, error) {
	if m == nil {
		return nil, errorf("mpi: message recv: a nil Message")
	}
	if !m.taken.CompareAndSwap(false, true) {
		return nil, errorf("mpi: message recv: the message was already received")
	}
	if m.v == nil {
		return nil, nil // ProcNull
	}
	c, v := m.c, m.v
	m.v = nil
	r := newRequest(c, false, c.id, v.src, v.tag, nil)
	e := c.e
	e.mu.Lock()
	key := xferKey{v.src, v.id}
	switch {
	case e.err != nil:
		e.finish(r, e.err)
	case v.rts && e.probed[key] != v:
		e.finish(r, &RankError{Rank: c.commRank(v.src), Op: "recv", Err: fmt.Errorf("sender withdrew the message: %w", ErrCanceled)})
	case v.rts && e.peers[v.src].gone:
		delete(e.probed, key)
		e.finish(r, e.peerLost(r, v.src))
	case v.rts:
		delete(e.probed, key)
		e.startRecv(r, v)
	default:
		e.deliver(r, v.src, v.tag, v.data)
	}
	e.mu.Unlock()
	<-r.done
	if r.err != nil {
		return nil, r.err
	}
	return r.data, nil
}

// withdrawProbed drops a large message matched by Mprobe whose sender
// withdrew it before the Message's Recv, and reports whether there was
// one. Called with e.mu held, from onCancel.
func (e *engine) withdrawProbed(key xferKey) bool {
	if _, ok := e.probed[key]; !ok {
		return false
	}
	delete(e.probed, key)
	return true
}
