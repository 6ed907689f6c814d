package mpi

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// Send sends data to rank dst with tag, and blocks until data may be
// reused: at once for a small message (up to the eager limit, 64 KiB by
// default) when the receiver has buffer credit, else until the receiver has
// taken the message. Send does not keep data after it returns. Errors wrap
// ErrRank, ErrTag, ErrClosed, ErrAborted, ErrConnLost or ctx.Err(); a
// message not yet on its way when ctx ends is withdrawn. Unlike MPI, a send
// to this rank itself completes at once whatever its size (the message is
// copied), so it never blocks for its receive; use Ssend for that. dst
// ProcNull completes at once, sending nothing.
func (c *Comm) Send(ctx context.Context, dst, tag int, data []byte) error {
	if ctx == nil {
		return nilContext("send")
	}
	opSend.Count(ctx)
	sp := c.span(ctx)
	err := c.send(ctx, "send", c.id, dst, tag, data)
	sp.end(c, "Send", dst, tag, len(data))
	return err
}

// Isend starts sending data to rank dst with tag and returns at once. data
// must not change until the request completes (Wait, Test, WaitAll, WaitAny
// or Done). An invalid argument gives a request that fails on Wait. A send
// to this rank itself is complete on return, whatever its size, so Cancel
// never withdraws it (MPI may); dst ProcNull gives a complete request.
func (c *Comm) Isend(dst, tag int, data []byte) *Request {
	sp := c.span(nil)
	r := c.isend("isend", c.id, dst, tag, data)
	sp.end(c, "Isend", dst, tag, len(data))
	return r
}

// Recv blocks until a message from rank src (or AnySource) with tag (or
// AnyTag) arrives, and returns it; the slice belongs to the caller. Messages
// from one sender with one tag on one communicator are received in the order
// they were sent. When ctx ends first, Recv returns an error wrapping
// ctx.Err(), and no later message is consumed on its behalf. src ProcNull
// returns at once: nil, with Status{Source: ProcNull, Tag: AnyTag}.
func (c *Comm) Recv(ctx context.Context, src, tag int) ([]byte, Status, error) {
	if ctx == nil {
		return nil, Status{}, nilContext("recv")
	}
	opRecv.Count(ctx)
	sp := c.span(ctx)
	b, st, err := c.recv(ctx, "recv", c.id, src, tag)
	if sp.t != nil {
		if err == nil {
			src, tag = st.Source, st.Tag
		}
		sp.end(c, "Recv", src, tag, len(b))
	}
	return b, st, err
}

// SendAll sends data to every other rank of c with tag, as Send to each
// would, and blocks until data may be reused. The others receive it with
// Recv(ctx, sender, tag). When c spans the whole world, one publish goes to
// the bus, which fans it out (a large message still waits until every rank
// has posted its receive, and then goes out once); otherwise it is sent to
// each rank in turn.
//
// Messages sent with SendAll on one communicator are received in the order
// sent, among themselves; they are not ordered with respect to Send messages
// from the same rank with the same tag, so give them tags of their own.
func (c *Comm) SendAll(ctx context.Context, tag int, data []byte) error {
	if ctx == nil {
		return nilContext("sendall")
	}
	opSendAll.Count(ctx)
	defer c.span(ctx).end(c, "SendAll", blocked.None, tag, len(data))
	if err := c.check(); err != nil {
		return err
	}
	if err := checkTag("sendall", tag, false); err != nil {
		return err
	}
	if c.Size() == c.e.size {
		r := newRequest(c, true, c.id, AnySource, tag, data)
		c.e.mu.Lock()
		ok := c.e.startSendAll(r)
		c.e.mu.Unlock()
		if ok {
			_, err := r.finishWait(ctx, "sendall")
			return err
		}
	}
	reqs := make([]*Request, 0, c.Size()-1)
	for d := range c.Size() {
		if d != c.rank {
			reqs = append(reqs, c.isend("sendall", c.id, d, tag, data))
		}
	}
	if err := WaitAll(ctx, reqs...); err != nil {
		for _, r := range reqs {
			r.Cancel()
		}
		return err
	}
	return nil
}

// Irecv posts a receive for a message from src (or AnySource) with tag (or
// AnyTag) and returns at once; Wait for it, then take the message from Data.
// src ProcNull gives a request already complete, with no data.
func (c *Comm) Irecv(src, tag int) *Request {
	sp := c.span(nil)
	r := c.irecv("irecv", c.id, src, tag)
	sp.end(c, "Irecv", src, tag, 0)
	return r
}

// RecvInto receives like Recv, into buf instead of new memory: the message
// must fit, and Status.Count says how many bytes of buf it filled. A message
// larger than buf is taken and dropped, and RecvInto returns an error
// wrapping ErrTruncate. Reusing one buffer for many messages saves an
// allocation per message; on one machine a large message is copied straight
// from the sender's memory into buf.
func (c *Comm) RecvInto(ctx context.Context, src, tag int, buf []byte) (Status, error) {
	if ctx == nil {
		return Status{}, nilContext("recvinto")
	}
	opRecvInto.Count(ctx)
	sp := c.span(ctx)
	r := c.irecvInto("recvinto", src, tag, buf)
	st, err := r.finishWait(ctx, "recvinto")
	if sp.t != nil {
		if err == nil {
			src, tag = st.Source, st.Tag
		}
		sp.end(c, "RecvInto", src, tag, st.Count)
	}
	return st, err
}

// IrecvInto posts a receive into buf, as RecvInto, and returns at once. buf
// must not be used until the request completes; Data then returns the
// filled part of buf.
func (c *Comm) IrecvInto(src, tag int, buf []byte) *Request {
	sp := c.span(nil)
	r := c.irecvInto("irecvinto", src, tag, buf)
	sp.end(c, "IrecvInto", src, tag, 0)
	return r
}

// Sendrecv sends data to dst and receives a message from src at the same
// time, so that a ring or a pairwise exchange cannot deadlock. It returns
// the received message. Either peer may be ProcNull (the edge of a line).
func (c *Comm) Sendrecv(ctx context.Context, dst, sendTag int, data []byte, src, recvTag int) ([]byte, Status, error) {
	if ctx == nil {
		return nil, Status{}, nilContext("sendrecv")
	}
	opSendrecv.Count(ctx)
	defer c.span(ctx).end(c, "Sendrecv", dst, sendTag, len(data))
	rr := c.irecv("sendrecv", c.id, src, recvTag)
	if err := c.send(ctx, "sendrecv", c.id, dst, sendTag, data); err != nil {
		rr.Cancel()
		return nil, Status{}, err
	}
	st, err := rr.finishWait(ctx, "sendrecv")
	if err != nil {
		return nil, st, err
	}
	return rr.data, st, nil
}

// Probe blocks until a message that Recv(ctx, src, tag) would return has
// arrived, and describes it without receiving it. Another goroutine may
// receive the message between Probe and Recv: use Mprobe when several
// goroutines probe. Iprobe is Probe that never blocks.
func (c *Comm) Probe(ctx context.Context, src, tag int) (Status, error) {
	if ctx == nil {
		return Status{}, nilContext("probe")
	}
	opProbe.Count(ctx)
	defer c.span(ctx).end(c, "Probe", src, tag, 0)
	if err := c.validRecv("probe", src, tag); err != nil {
		return Status{}, err
	}
	if src == ProcNull {
		return procNullStatus, nil
	}
	wsrc := src
	if src != AnySource {
		wsrc = c.worldRank(src)
	}
	for entered := false; ; {
		st, ok, wait, err := c.e.probe(c, c.id, wsrc, tag)
		if err != nil || ok {
			return st, err
		}
		if !entered && blocked.IsQuiet(ctx) {
			entered = true
			blocked.Parking(ctx)
		} else if !entered {
			entered = true
			bc := blocked.Call{Op: "Probe", Comm: c.label(), Group: c.group, Peer: src, PeerWorld: wsrc, Tag: tag, Root: blocked.None, Bytes: -1}
			defer blocked.Enter(bc).Exit()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Status{}, fmt.Errorf("mpi: probe: %w", ctx.Err())
		}
	}
}

func (c *Comm) validRecv(op string, src, tag int) error {
	if err := c.check(); err != nil {
		return err
	}
	if err := c.checkRank(op, src, true); err != nil {
		return err
	}
	return checkTag(op, tag, true)
}

func (c *Comm) send(ctx context.Context, op string, cid uint64, dst, tag int, data []byte) error {
	if c.e.sendNow(c, cid, dst, tag, data) {
		return nil
	}
	r := c.isend(op, cid, dst, tag, data)
	_, err := r.finishWait(ctx, op)
	return err
}

func (c *Comm) isend(op string, cid uint64, dst, tag int, data []byte) *Request {
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
	r := newRequest(c, true, cid, c.worldRank(dst), tag, data)
	c.e.mu.Lock()
	c.e.startSend(r)
	c.e.mu.Unlock()
	return r
}

func (c *Comm) recv(ctx context.Context, op string, cid uint64, src, tag int) ([]byte, Status, error) {
	if b, st, ok := c.e.recvNow(c, cid, src, tag); ok {
		return b, st, nil
	}
	r := c.irecv(op, cid, src, tag)
	st, err := r.finishWait(ctx, op)
	if err != nil {
		return nil, st, err
	}
	return r.data, st, nil
}

func (c *Comm) irecv(op string, cid uint64, src, tag int) *Request {
	return c.postRecv(op, cid, src, tag, nil, false)
}

func (c *Comm) irecvInto(op string, src, tag int, buf []byte) *Request {
	return c.postRecv(op, c.id, src, tag, buf, true)
}

func (c *Comm) postRecv(op string, cid uint64, src, tag int, buf []byte, into bool) *Request {
	if err := c.validRecv(op, src, tag); err != nil {
		return failedRequest(err)
	}
	if src == ProcNull {
		return nullRequest(c, false)
	}
	wsrc := src
	if src != AnySource {
		wsrc = c.worldRank(src)
	}
	r := newRequest(c, false, cid, wsrc, tag, nil)
	r.into, r.hasInto = buf, into
	c.e.mu.Lock()
	c.e.postRecv(r)
	c.e.mu.Unlock()
	return r
}
