package mpi

import (
	"fmt"
	"os"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// Receiving: every frame is checked, then matched against posted
// receives or kept as unexpected, within the receiver's eager budget.

// recvNow is the blocking Recv's fast path: an eager message that has
// already arrived is taken without a Request. src is a rank of c or
// AnySource, already checked by the caller when it matters.
func (e *engine) recvNow(c *Comm, comm uint64, src, tag int) ([]byte, Status, bool) {
	if src < AnySource || src >= c.Size() || tag < AnyTag || c.closed.Load() {
		return nil, Status{}, false
	}
	if src != AnySource {
		src = c.worldRank(src)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, Status{}, false
	}
	q := e.queues[comm]
	if q == nil {
		return nil, Status{}, false
	}
	for i, v := range q.unexpected {
		if matches(src, tag, v.src, v.tag) {
			if v.rts {
				return nil, Status{}, false
			}
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			e.countRecv(len(v.data))
			traceArrived(c, v.src, comm, v.tag)
			return v.data, Status{Source: c.commRank(v.src), Tag: v.tag, Count: len(v.data)}, true
		}
	}
	return nil, Status{}, false
}

// onFrame checks a frame from world rank src, which the transport vouches
// for (it took it from the frame's subject), and acts on it; mc tells that
// it came on the multicast stream, where names the stream in errors.
// Every field read from the wire is checked against what this rank knows
// before it is used; a frame that fails is a protocol error (see
// violation).
func (e *engine) onFrame(where string, src int, mc bool, h header, data []byte) {
	blocked.Tick()
	<-e.started // a frame can come before this rank's start-up answer
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return
	}
	if mc {
		defer func() {
			e.peers[src].mcSeen++
			e.checkGone(src)
		}()
	}
	switch {
	case h.src != src:
		e.violation(where, "src", "rank %d sent a frame that claims rank %d", src, h.src)
		return
	case src == e.rank:
		e.violation(where, "src", "a frame from this rank itself")
		return
	case mc && h.kind != kEager && h.kind != kRTS && h.kind != kCancel && h.kind != kChunk:
		e.violation(where, "kind", "kind %d is never multicast", h.kind)
		return
	}
	switch h.kind {
	case kEager:
		if e.checkTag(where, h.tag) && e.charge(where, src, int64(len(data))+frameCost) {
			e.arrive(h.comm, src, h.tag, data, nil)
		}
	case kRTS:
		v, ok := e.checkRTS(where, h, data, mc)
		if ok && e.charge(where, src, frameCost) {
			e.arrive(h.comm, src, h.tag, nil, v)
		}
	case kChunk:
		e.onChunk(where, src, h.id, h.n, data, mc)
	case kCTS:
		e.onCTS(where, h)
	case kCredit:
		e.onCredit(where, h)
	case kCancel:
		e.onCancel(where, h)
	case kPull:
		e.onPull(where, h)
	case kGo:
		e.onGo(where, h)
	case kDone:
		e.onDone(where, h)
	case kBye: // never multicast: refused above
		p := &e.peers[src]
		if !p.bye {
			p.bye, p.byeAfter = true, h.n
			e.checkGone(src)
		}
	default:
		e.violation(where, "kind", "unknown frame kind %d", h.kind)
	}
}

// checkTag checks a message's tag. Called with e.mu held.
func (e *engine) checkTag(subj string, tag int) bool {
	if tag < 0 || tag > MaxTag {
		e.violation(subj, "tag", "tag %d is outside [0, %d]", tag, MaxTag)
		return false
	}
	return true
}

// checkRTS checks an RTS and its offer, and returns its envelope.
// An empty message comes as an RTS from a synchronous send only, never
// multicast.
func (e *engine) checkRTS(subj string, h header, payload []byte, mc bool) (*envelope, bool) {
	if !e.checkTag(subj, h.tag) {
		return nil, false
	}
	least := uint64(1)
	if !mc {
		least = 0
	}
	if h.n < least || h.n > maxMessage {
		e.violation(subj, "n", "a message of %d bytes announced; want %d to %d", h.n, least, uint64(maxMessage))
		return nil, false
	}
	if h.n == 0 && len(payload) > 0 {
		e.violation(subj, "offer", "an offer of an empty message")
		return nil, false
	}
	if h.id == 0 {
		e.violation(subj, "id", "message id 0")
		return nil, false
	}
	if _, dup := e.recvs[xferKey{h.src, h.id}]; dup {
		e.violation(subj, "id", "message id %d is already being received", h.id)
		return nil, false
	}
	v := &envelope{src: h.src, tag: h.tag, rts: true, id: h.id, size: int(h.n)}
	if len(payload) == 0 {
		return v, true
	}
	o, ok := parseOffer(payload)
	if !ok {
		e.violation(subj, "offer", "%d bytes, want %d or none", len(payload), offerLen)
		return nil, false
	}
	if ann := e.peerInfo[h.src]; o.host == 0 || o.pid != ann.pid || o.host != ann.host || o.addr == 0 {
		e.violation(subj, "offer", "pid %d on machine %x at %#x; rank %d announced pid %d on machine %x at start-up", o.pid, o.host, o.addr, h.src, ann.pid, ann.host)
		return nil, false
	}
	v.offer = o
	return v, true
}

// charge counts an eager frame (or an RTS) of cost bytes of credit from
// src; a sender that spends more than the credit this rank granted it is a
// protocol error. Called with e.mu held.
func (e *engine) charge(subj string, src int, cost int64) bool {
	p := &e.peers[src]
	if p.held+cost > e.share {
		e.violation(subj, "credit", "rank %d sent %d bytes beyond the %d bytes of credit it has", src, p.held+cost-e.share, e.share)
		return false
	}
	p.held += cost
	return true
}

// violation fails this rank for a frame that breaks the protocol: every
// pending and later operation fails with an error wrapping ErrProtocol that
// names the frame's subject and field, and under gorun the rank says so
// and exits with status 1. Called with e.mu held.
func (e *engine) violation(subj, field, format string, args ...any) {
	if e.closing || e.err != nil {
		return
	}
	err := fmt.Errorf("%w: a frame on %s: field %s: %s", ErrProtocol, subj, field, fmt.Sprintf(format, args...))
	e.failAll(err)
	if e.opts.ExitOnLoss {
		fmt.Fprintf(os.Stderr, "mpi: rank %d: %v; exiting\n", e.rank, err)
		os.Exit(1)
	}
}

// reject fails the job on a frame from the stream named where whose
// header cannot be read: a protocol error, like violation.
func (e *engine) reject(where, field, format string, args ...any) {
	<-e.started
	e.mu.Lock()
	e.violation(where, field, format, args...)
	e.mu.Unlock()
}

// arrive matches a message against the posted receives of its
// communicator, or keeps it as unexpected. rts is nil for eager data.
func (e *engine) arrive(comm uint64, src, tag int, data []byte, rts *envelope) {
	q := e.queue(comm)
	for i, r := range q.posted {
		if matches(r.peer, r.tag, src, tag) {
			q.posted = remove(q.posted, i)
			r.stage = stageNone
			if rts != nil {
				e.consume(src, frameCost)
				e.startRecv(r, rts)
			} else {
				e.consume(src, int64(len(data))+frameCost)
				e.deliver(r, src, tag, data)
			}
			return
		}
	}
	if rts == nil {
		rts = &envelope{src: src, tag: tag, data: data}
	}
	if src != e.rank {
		p := &e.peers[src]
		p.waiting += rts.cost()
		e.stats.peakHeld = max(e.stats.peakHeld, p.waiting)
	}
	q.unexpected = append(q.unexpected, rts)
	close(e.arrived)
	e.arrived = make(chan struct{})
}

// take accounts for unexpected message v, matched by a receive.
func (e *engine) take(v *envelope) {
	if v.ssend != nil {
		e.finish(v.ssend, nil)
		v.ssend = nil
	}
	if v.src != e.rank {
		e.peers[v.src].waiting -= v.cost()
	}
	e.consume(v.src, v.cost())
}

// consume counts eager bytes from src as received, and returns credit to
// the sender once a quarter of its share is used.
func (e *engine) consume(src int, n int64) {
	if src == e.rank {
		return
	}
	p := &e.peers[src]
	p.consumed += n
	if p.consumed >= e.share/4 {
		e.publish(src, header{kind: kCredit, src: e.rank, n: uint64(p.consumed)}, nil)
		p.held -= p.consumed
		p.consumed = 0
	}
}

// postRecv matches a new receive against the unexpected messages, or posts
// it. Called with e.mu held.
func (e *engine) postRecv(r *Request) {
	if e.err != nil {
		e.finish(r, e.err)
		return
	}
	q := e.queue(r.comm)
	for i, v := range q.unexpected {
		if matches(r.peer, r.tag, v.src, v.tag) {
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			if v.rts {
				e.startRecv(r, v)
			} else {
				e.deliver(r, v.src, v.tag, v.data)
			}
			return
		}
	}
	if err := e.lostFor(r); err != nil {
		e.finish(r, err)
		return
	}
	r.stage = stagePosted
	q.posted = append(q.posted, r)
}

// deliver completes receive r with an eager message from world rank src:
// the message itself, or a copy in r's buffer. Called with e.mu held.
func (e *engine) deliver(r *Request, src, tag int, data []byte) {
	traceArrived(r.c, src, r.comm, tag)
	r.status = Status{Source: r.c.commRank(src), Tag: tag, Count: len(data)}
	if !r.hasInto {
		r.data = data
		e.finish(r, nil)
		return
	}
	if len(data) > len(r.into) {
		e.finish(r, truncated(r, len(data)))
		return
	}
	r.data = r.into[:copy(r.into, data)]
	e.finish(r, nil)
}

// truncated is the error of receive r, whose buffer is too small for a
// message of size bytes.
func truncated(r *Request, size int) error {
	return &RankError{Rank: r.status.Source, Op: "recv", Err: fmt.Errorf("a message of %d bytes does not fit the %d-byte buffer: %w", size, len(r.into), ErrTruncate)}
}

// probe returns the status of the first unexpected message that a receive
// (src, tag) would match, or a channel that is closed when another arrives.
func (e *engine) probe(c *Comm, comm uint64, src, tag int) (Status, bool, <-chan struct{}, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return Status{}, false, nil, e.err
	}
	for _, v := range e.queue(comm).unexpected {
		if matches(src, tag, v.src, v.tag) {
			return Status{Source: c.commRank(v.src), Tag: v.tag, Count: v.count()}, true, nil, nil
		}
	}
	if src != AnySource {
		src = c.commRank(src) // lost takes a rank of c
	}
	if w, lost := e.lost(c, src); lost {
		return Status{}, false, nil, e.waitLost(c, comm, tag, w, &RankError{Rank: c.commRank(w), Op: "probe", Err: e.lostErr(w)})
	}
	return Status{}, false, e.arrived, nil
}
