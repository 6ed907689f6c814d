package mpi

// Multicast: SendAll to the whole world as one publish, which the server
// fans out, with the credit and rendezvous it needs at every rank.

// startSendAll sends r to every other rank of the world with one publish on
// the multicast subject, which the server fans out. It needs eager credit at
// every peer; without it, r waits in the multicast queue (in order, behind
// any multicast already waiting). Called with e.mu held; it reports false,
// having done nothing, when multicast is off.
func (e *engine) startSendAll(r *Request) bool {
	if !e.multicast() {
		return false
	}
	if e.err != nil {
		e.finish(r, e.err)
		return true
	}
	r.mcast = true
	r.rdv = len(r.data) > e.opts.EagerLimit
	e.inflight++
	r.counted = true
	for w := range e.peers {
		if e.peers[w].gone {
			e.finish(r, e.peerLost(r, w))
			return true
		}
	}
	for w := range e.size {
		if w != e.rank {
			traceSent(r.c, w, r.comm, r.tag)
		}
	}
	if len(e.mcQueue) > 0 || !e.affordsAll(r) {
		r.stage = stageQueued
		e.stats.creditWaits++
		e.mcQueue = append(e.mcQueue, r)
		return true
	}
	e.transmitAll(r)
	return true
}

// affordsAll is affords for a multicast send, with the least credit this
// rank has at any peer.
func (e *engine) affordsAll(r *Request) bool {
	left, spare := e.mcastCredit()
	return e.affords(r, left, spare)
}

// mcastCredit is the least eager credit this rank has at any peer, and
// the least of it beyond the reserve.
func (e *engine) mcastCredit() (left, spare int64) {
	left, spare = maxCredit, maxCredit
	for p := range e.peers {
		if p != e.rank {
			left = min(left, e.peers[p].left)
			spare = min(spare, e.peers[p].left-e.reserve(p))
		}
	}
	return left, spare
}

// transmitAll puts a multicast send on the wire; every peer has credit.
func (e *engine) transmitAll(r *Request) {
	cost := e.sendCost(r)
	for p := range e.peers {
		if p != e.rank {
			e.peers[p].left -= cost
		}
	}
	if !r.rdv {
		e.publishEager(toAll, r.comm, r.tag, r.data)
		e.finish(r, nil)
		return
	}
	e.nextID++
	r.id = e.nextID
	r.grants = make([]int, e.size)
	r.pulled = make([]uint8, e.size)
	e.sends[r.id] = r
	e.publish(toAll, header{kind: kRTS, src: e.rank, comm: r.comm, tag: r.tag, id: r.id, n: uint64(len(r.data))}, e.offerFor(r))
}

// progress moves a multicast rendezvous send on: it publishes the chunks
// that every rank receiving by chunks has granted (each goes out once, for
// all of them), and completes the send once every rank has the message,
// by chunks or by a single copy.
func (e *engine) progress(r *Request) {
	upto, chunked, answered := len(r.data), false, true
	for p, g := range r.grants {
		if p != e.rank && r.pulled[p] == pullNone {
			chunked = true
			upto = min(upto, g)
			answered = answered && g > 0
		}
	}
	if answered {
		for p, st := range r.pulled {
			if st == pullWanted {
				r.pulled[p] = pullReading
				e.letCopy(r, p)
			}
		}
	}
	if chunked && !e.stream(r, toAll, upto) {
		return
	}
	if r.readers > 0 || (chunked && r.off < len(r.data)) {
		return
	}
	delete(e.sends, r.id)
	e.finish(r, r.err)
}
