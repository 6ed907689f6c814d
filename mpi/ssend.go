package mpi

import (
	"context"
	"errors"
	"fmt"
)

// Synchronous sends: a message goes as a rendezvous whatever its size, so
// that its sender learns, from the grant or the copy request of the
// receiver, that a receive has matched it; an empty one, which needs no
// grant, from the done the receiver sends when it matches it
// (engine.startRecv). A synchronous send to this
// rank itself is finished by the receive that takes it (engine.take).

// Ssend sends data to rank dst with tag, like Send, and returns only once a
// receive (or a Message from Mprobe) has matched the message, whatever its
// size: a rank that never posts the receive keeps Ssend blocked until ctx
// ends, when the message is withdrawn and Ssend returns an error wrapping
// ctx.Err(). Use it to find programs that would deadlock without eager
// buffering. An empty message waits for its match as any other does.
// Errors are Send's; with ProcNull it returns nil at once.
func (c *Comm) Ssend(ctx context.Context, dst, tag int, data []byte) error {
	if ctx == nil {
		return nilContext("ssend")
	}
	defer c.span(ctx).end(c, "Ssend", dst, tag, len(data))
	r := c.issend("ssend", dst, tag, data)
	if r.e == nil || r.peer != r.e.rank {
		_, err := r.finishWait(ctx, "ssend")
		return err
	}
	_, err := r.wait(ctx, "Ssend")
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		cerr := fmt.Errorf("mpi: ssend: %w", ctx.Err())
		if r.e.withdrawSelf(r, cerr) {
			return cerr
		}
		<-r.done
		return r.err
	}
	return err
}

// Issend starts a synchronous send, as Ssend, and returns at once: the
// request completes once a receive has matched the message. data must not
// change until then. Cancel withdraws it while no receive has matched it,
// except a send to this rank itself, which Cancel never withdraws.
func (c *Comm) Issend(dst, tag int, data []byte) *Request {
	sp := c.span(nil)
	r := c.issend("issend", dst, tag, data)
	sp.end(c, "Issend", dst, tag, len(data))
	return r
}

func (c *Comm) issend(op string, dst, tag int, data []byte) *Request {
	if err := c.check(); err != nil {
		return failedRequest(err)
	}
	if err := c.checkRank(op, dst, false); err != nil {
		return failedRequest(err)
	}
	if err := checkTag(op, tag, false); err != nil {
		return failedRequest(err)
	}
	if dst == ProcNull {
		return nullRequest(c, true)
	}
	r := newRequest(c, true, c.id, c.worldRank(dst), tag, data)
	r.rdv = true // a rendezvous: the sender hears of the match
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if r.peer == c.e.rank {
		c.e.ssendSelf(r)
	} else {
		c.e.startSend(r)
	}
	return r
}

// ssendSelf delivers a synchronous send to this rank itself: r finishes
// now if a posted receive takes the message, else when one takes it from
// the unexpected messages. Called with e.mu held.
func (e *engine) ssendSelf(r *Request) {
	if e.err != nil {
		e.finish(r, e.err)
		return
	}
	e.inflight++
	r.counted = true
	traceSent(r.c, r.peer, r.comm, r.tag)
	q := e.queue(r.comm)
	n := len(q.unexpected)
	e.arrive(r.comm, e.rank, r.tag, append([]byte(nil), r.data...), nil)
	if len(q.unexpected) > n {
		q.unexpected[len(q.unexpected)-1].ssend = r
		return
	}
	e.finish(r, nil)
}

// withdrawSelf takes back a synchronous send to this rank that no receive
// has taken yet, and fails it with err. It reports whether it did.
func (e *engine) withdrawSelf(r *Request, err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.finished {
		return false
	}
	q := e.queue(r.comm)
	for i, v := range q.unexpected {
		if v.ssend == r {
			v.ssend = nil
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			e.finish(r, err)
			return true
		}
	}
	return false
}
