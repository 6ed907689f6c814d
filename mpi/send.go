package mpi

// Sending: a send starts (eager with credit, queued without it, or a
// rendezvous), goes on the wire, and gets credit back.

func (e *engine) sendCost(r *Request) int64 {
	if r.rdv {
		return frameCost
	}
	return int64(len(r.data)) + frameCost
}

// startSend begins a send; r is new and fully set up. Called with e.mu held.
func (e *engine) startSend(r *Request) {
	if e.err != nil {
		e.finish(r, e.err)
		return
	}
	e.inflight++
	r.counted = true
	if r.peer == e.rank { // to self: a local copy, never the bus
		traceSent(r.c, r.peer, r.comm, r.tag)
		data := append([]byte(nil), r.data...)
		e.arrive(r.comm, e.rank, r.tag, data, nil)
		e.finish(r, nil)
		return
	}
	if e.peers[r.peer].gone {
		e.finish(r, e.peerLost(r, r.peer))
		return
	}
	traceSent(r.c, r.peer, r.comm, r.tag)
	if len(r.data) > e.opts.EagerLimit {
		r.rdv = true
		e.nextID++
		r.id = e.nextID
	}
	p := &e.peers[r.peer]
	if len(p.queue) == 0 && e.affords(r, p.left, p.left-e.reserve(r.peer)) {
		e.transmit(r)
		return
	}
	r.stage = stageQueued
	e.stats.creditWaits++
	p.queue = append(p.queue, r)
}

// sendNow is the blocking Send's fast path: a small message to another rank
// with credit to spare and nothing queued before it goes out at once,
// without a Request. It reports whether it sent; when not, the caller takes
// the general path, which also reports any error.
func (e *engine) sendNow(c *Comm, comm uint64, dst, tag int, data []byte) bool {
	if len(data) > e.opts.EagerLimit || dst < 0 || dst >= c.Size() || tag < 0 || tag > MaxTag || c.closed.Load() {
		return false
	}
	w := c.worldRank(dst)
	e.mu.Lock()
	defer e.mu.Unlock()
	p := &e.peers[w]
	if e.err != nil || w == e.rank || len(p.queue) > 0 || p.gone || !e.eagerFits(w, len(data)) {
		return false
	}
	p.left -= int64(len(data)) + frameCost
	// Recorded before it leaves: over shared memory the receiver can
	// record its end before this line would come after the publish.
	traceSent(c, w, comm, tag)
	e.publishEager(w, comm, tag, data)
	e.countSent(1, len(data))
	return e.err == nil
}

// affords reports whether send r can go out now, with left bytes of eager
// credit at its receiver of which spare lie beyond the reserve: eager when
// the spare covers it; else, when what is left covers a frame, as a
// rendezvous, which it then becomes (so a receiver that holds a sender's
// earlier messages unreceived while it waits for a later one gets the later
// one: eager messages fill at most the credit less the reserve, and only
// reserve/frameCost unreceived RTSs more stop the ones behind them). An
// empty message costs what an RTS costs, and may use the reserve too.
// Called with e.mu held.
func (e *engine) affords(r *Request, left, spare int64) bool {
	switch {
	case r.rdv || len(r.data) == 0:
		return left >= frameCost
	case spare >= e.sendCost(r):
		return true
	case left >= frameCost:
		r.rdv = true
		if r.stage != stageQueued { // a queued send was counted when it queued
			e.stats.creditWaits++
		}
		return true
	}
	return false
}

// reserve is the part of the eager credit peer granted that eager messages
// leave to RTSs and empty messages: half of it.
func (e *engine) reserve(peer int) int64 { return e.peerInfo[peer].credit / 2 }

// eagerFits reports whether an eager message of n bytes fits the credit
// left at peer, as affords would send it.
func (e *engine) eagerFits(peer int, n int) bool {
	left := e.peers[peer].left
	if n == 0 {
		return left >= frameCost
	}
	return left-e.reserve(peer) >= int64(n)+frameCost
}

// transmit puts a send whose credit is available on the wire.
func (e *engine) transmit(r *Request) {
	p := &e.peers[r.peer]
	p.left -= e.sendCost(r)
	if r.rdv {
		if r.id == 0 {
			e.nextID++
			r.id = e.nextID
		}
		e.sends[r.id] = r
		e.publish(r.peer, header{kind: kRTS, src: e.rank, comm: r.comm, tag: r.tag, id: r.id, n: uint64(len(r.data))}, e.offerFor(r))
		return
	}
	e.publishEager(r.peer, r.comm, r.tag, r.data)
	e.finish(r, nil)
}

// publishEager sends a whole small message to dst (or toAll).
func (e *engine) publishEager(dst int, comm uint64, tag int, data []byte) {
	e.publish(dst, header{kind: kEager, src: e.rank, comm: comm, tag: tag}, data)
}

func (e *engine) onCredit(subj string, h header) {
	p := &e.peers[h.src]
	if h.n == 0 || h.n > uint64(e.peerInfo[h.src].credit-p.left) {
		e.violation(subj, "n", "a credit of %d bytes; at most %d were spent", h.n, e.peerInfo[h.src].credit-p.left)
		return
	}
	p.left += int64(h.n)
	for len(p.queue) > 0 && e.err == nil {
		r := p.queue[0]
		if !e.affords(r, p.left, p.left-e.reserve(h.src)) {
			break
		}
		p.queue[0] = nil
		p.queue = p.queue[1:]
		r.stage = stageNone
		e.transmit(r)
	}
	for len(e.mcQueue) > 0 && e.err == nil {
		r := e.mcQueue[0]
		if !e.affordsAll(r) {
			break
		}
		e.mcQueue = remove(e.mcQueue, 0)
		r.stage = stageNone
		e.transmitAll(r)
	}
}
