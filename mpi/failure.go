package mpi

import (
	"fmt"
	"os"
	"time"
)

// Completion, cancellation and failure of requests, and of the job.

// finish completes r once. Called with e.mu held.
func (e *engine) finish(r *Request, err error) {
	if r.finished {
		return
	}
	r.finished = true
	r.err = err
	if err == nil && !r.abandoned {
		if !r.send {
			e.countRecv(len(r.data))
		} else if r.mcast {
			e.countSent(e.size-1, len(r.data))
		} else {
			e.countSent(1, len(r.data))
		}
	}
	if r.send && r.counted {
		e.inflight--
		if e.inflight == 0 && e.idle != nil {
			close(e.idle)
			e.idle = nil
		}
	}
	close(r.done)
	e.wakeWaiters()
}

// cancel withdraws r if it has not started moving data. A receive already
// matched to a large message is abandoned instead when abandon is set: the
// transfer runs to its end and its data is dropped. It reports whether r
// was withdrawn or abandoned.
func (e *engine) cancel(r *Request, err error, abandon bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.finished {
		return false
	}
	switch {
	case !r.send && r.stage == stagePosted:
		q := e.queue(r.comm)
		q.posted = removeItem(q.posted, r)
		r.stage = stageNone
	case !r.send && r.stage == stageCopying && r.hasInto:
		return false // the copy is writing into the caller's buffer
	case !r.send && r.rendezvous:
		if !abandon {
			return false
		}
		r.abandoned = true
		r.data = nil
	case r.send && r.stage == stageQueued && r.mcast:
		e.mcQueue = removeItem(e.mcQueue, r)
		r.stage = stageNone
	case r.send && r.stage == stageQueued:
		p := &e.peers[r.peer]
		p.queue = removeItem(p.queue, r)
		r.stage = stageNone
	case r.send && r.rdv && r.readers > 0:
		return false // a receiver is copying it out of our memory
	case r.send && r.rdv:
		delete(e.sends, r.id)
		dst := toAll
		if !r.mcast {
			dst = r.peer
		}
		e.publish(dst, header{kind: kCancel, src: e.rank, comm: r.comm, tag: r.tag, id: r.id}, nil)
	default:
		return false
	}
	e.finish(r, err)
	return true
}

// failAll sets the sticky error and fails every pending operation with it.
// Called with e.mu held.
func (e *engine) failAll(err error) {
	if e.err != nil {
		return
	}
	e.err = err
	for _, q := range e.queues {
		for _, r := range q.posted {
			e.finish(r, err)
		}
		q.posted = nil
	}
	for i := range e.peers {
		for _, r := range e.peers[i].queue {
			e.finish(r, err)
		}
		e.peers[i].queue = nil
	}
	for _, r := range e.mcQueue {
		e.finish(r, err)
	}
	e.mcQueue = nil
	for _, r := range e.sends {
		e.finish(r, err)
	}
	for _, r := range e.recvs {
		if r.stage != stageCopying { // a copy still writing into r's buffer ends it itself
			e.finish(r, err)
		}
	}
	clear(e.sends)
	clear(e.recvs)
	e.grantQ = nil
	close(e.arrived)
	e.arrived = make(chan struct{})
}

// lose handles the loss of the connection. Called with e.mu held.
func (e *engine) lose(cause error) {
	if e.closing || e.err != nil {
		return
	}
	err := fmt.Errorf("%w: %v", ErrConnLost, cause)
	e.failAll(err)
	if e.opts.ExitOnLoss {
		fmt.Fprintf(os.Stderr, "mpi: rank %d: %v; exiting\n", e.rank, err)
		os.Exit(1)
	}
}

// onAbort handles the Abort of world rank src, which the transport vouches
// for; where names the stream in errors.
func (e *engine) onAbort(where string, src int, data []byte) {
	<-e.started
	rank, code, ok := parseAbort(data)
	e.mu.Lock()
	bad := true
	switch {
	case !ok:
		e.violation(where, "length", "an abort of %d bytes, want 8", len(data))
	case rank != src:
		e.violation(where, "rank", "rank %d sent an abort that claims rank %d", src, rank)
	case code < 1 || code > 255:
		e.violation(where, "code", "exit code %d is outside [1, 255]", code)
	default:
		bad = false
	}
	if bad {
		e.mu.Unlock()
		return
	}
	e.failAll(&AbortError{Rank: rank, Code: code})
	e.mu.Unlock()
	if e.opts.fromEnv {
		// Like MPI_Abort: every process of the job ends, with the code.
		os.Exit(code)
	}
}

// waitIdle waits until every send is complete, or d passes.
func (e *engine) waitIdle(d time.Duration) bool {
	e.mu.Lock()
	if e.inflight == 0 {
		e.mu.Unlock()
		return true
	}
	if e.idle == nil {
		e.idle = make(chan struct{})
	}
	idle := e.idle
	e.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}
