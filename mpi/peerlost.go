package mpi

// Peers that closed: a rank that closes says bye after what it sent;
// what waits for it then fails with ErrPeerLost.

import "github.com/gorun-hpc/gorun/internal/contract"

// checkGone marks world rank src gone once it said bye and every
// multicast frame it sent before has been handled (multicast frames come
// on a subscription of their own, in their own order), and fails what
// waits for it. Called with e.mu held.
func (e *engine) checkGone(src int) {
	if p := &e.peers[src]; p.bye && !p.gone && p.mcSeen >= p.byeAfter {
		e.goneNow(src)
	}
}

// peerCut marks world rank src gone at once: the transport knows that
// nothing more will come from it (the in-memory network cut it off).
func (e *engine) peerCut(src int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.peers[src].gone && e.err == nil {
		e.goneNow(src)
	}
}

// goneNow marks world rank src gone and fails what waits for it. Called
// with e.mu held.
func (e *engine) goneNow(src int) {
	p := &e.peers[src]
	p.gone = true
	if e.reports && !e.closing {
		// gorun hears of it before this rank can fail because of it: a
		// failure that follows is a bystander's, and gorun's verdict
		// names src instead when src failed (launcher's blame).
		report(contract.ReportLost, src)
	}
	for _, q := range e.queues {
		kept := q.posted[:0]
		for _, r := range q.posted {
			if err := e.lostFor(r); err != nil {
				r.stage = stageNone
				e.finish(r, err)
			} else {
				kept = append(kept, r)
			}
		}
		clear(q.posted[len(kept):])
		q.posted = kept
	}
	for _, r := range p.queue {
		e.finish(r, e.peerLost(r, src))
	}
	p.queue = nil
	for id, r := range e.sends {
		// A multicast send another rank copies from stays: the copy ends it.
		if r.peer == src || (r.mcast && r.readers == 0) {
			delete(e.sends, id)
			if r.mcast {
				// The other ranks may have matched it: withdraw it there.
				e.publish(toAll, header{kind: kCancel, src: e.rank, comm: r.comm, tag: r.tag, id: r.id}, nil)
			}
			e.finish(r, e.peerLost(r, src))
		}
	}
	for _, r := range e.mcQueue {
		e.finish(r, e.peerLost(r, src))
	}
	e.mcQueue = nil
	for k, r := range e.recvs {
		if k.src == src && r.stage != stageCopying {
			// As when its sender withdraws it: the window it was granted
			// comes back (an abandoned one is finished already).
			delete(e.recvs, k)
			e.window += int64(r.granted - r.off)
			e.grantQ = removeItem(e.grantQ, r)
			e.finish(r, e.peerLost(r, src))
		}
	}
	e.pumpGrants()
	close(e.arrived) // a Probe waiting for src looks again
	e.arrived = make(chan struct{})
}

// lost reports whether a receive from src (a communicator rank of c, or
// AnySource) can never match: src is gone. A receive from AnySource can
// always match (another goroutine of this rank may send to it), and so can
// any receive from this rank itself. It returns the world rank to name.
// Called with e.mu held.
func (e *engine) lost(c *Comm, src int) (int, bool) {
	if src == AnySource {
		return 0, false
	}
	w := c.worldRank(src)
	return w, e.peers[w].gone
}

// lostFor is the error of a posted receive r that can never match, or
// nil. Called with e.mu held.
func (e *engine) lostFor(r *Request) error {
	src := r.peer
	if src != AnySource {
		src = r.c.commRank(src)
	}
	if w, lost := e.lost(r.c, src); lost {
		return e.recvLost(r, w, &RankError{Rank: r.c.commRank(w), Op: "recv", Err: e.lostErr(w)})
	}
	return nil
}

// peerLost is the error of r, a send to or a receive from world rank w,
// which is gone. Called with e.mu held.
func (e *engine) peerLost(r *Request, w int) error {
	op := "recv"
	if r.send {
		op = "send"
	}
	return &RankError{Rank: r.c.commRank(w), Op: op, Err: e.lostErr(w)}
}

// lostErr is why world rank w, gone, cannot answer: ErrPeerDied or
// ErrPeerLost. Called with e.mu held.
func (e *engine) lostErr(w int) error {
	if e.peers[w].died {
		return ErrPeerDied
	}
	return ErrPeerLost
}

// peerDied marks world rank src gone at once because its process died:
// gorun saw it end, and the job goes on without it (--on-failure
// continue), or the shared-memory transport found its pid gone.
func (e *engine) peerDied(src int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := &e.peers[src]; !p.gone && e.err == nil {
		p.died = true
		e.goneNow(src)
	}
}

// sayBye tells every other rank that this one has closed its world, after
// the multicast frames it has sent. Called with e.mu held.
func (e *engine) sayBye() {
	h := header{kind: kBye, src: e.rank, n: e.mcSent.Load()}
	for w := range e.size {
		if w != e.rank {
			e.publish(w, h, nil)
		}
	}
}
