package mpi

import (
	"fmt"
	"strings"

	"github.com/gorun-hpc/gorun/internal/invariant"
)

func init() {
	invariant.Quiescent = func(comm any) error { return comm.(*Comm).e.quiescent() }
	invariant.Standing = func(req any) {
		r := req.(*Request)
		r.e.mu.Lock()
		r.standing = true
		r.e.mu.Unlock()
	}
}

// quiescent returns an error naming what the engine still holds that a
// quiet job must not (see internal/invariant, which tests call it
// through).
func (e *engine) quiescent() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var left []string
	for id, q := range e.queues {
		posted := 0
		for _, r := range q.posted {
			if !r.standing {
				posted++
			}
		}
		if posted > 0 || len(q.unexpected) > 0 {
			left = append(left, fmt.Sprintf("context %x: %d posted receives, %d unexpected messages", id, posted, len(q.unexpected)))
		}
	}
	if len(e.sends) > 0 || len(e.recvs) > 0 || len(e.grantQ) > 0 || len(e.mcQueue) > 0 {
		left = append(left, fmt.Sprintf("%d rendezvous sends, %d rendezvous receives, %d receives waiting for window, %d multicasts waiting for credit", len(e.sends), len(e.recvs), len(e.grantQ), len(e.mcQueue)))
	}
	if e.inflight != 0 {
		left = append(left, fmt.Sprintf("%d sends in flight", e.inflight))
	}
	if e.window != int64(e.opts.RendezvousWindow) {
		left = append(left, fmt.Sprintf("window %d of %d", e.window, e.opts.RendezvousWindow))
	}
	for w := range e.peers {
		p := &e.peers[w]
		if len(p.queue) > 0 || p.waiting != 0 {
			left = append(left, fmt.Sprintf("rank %d: %d sends waiting for credit, %d unexpected bytes charged", w, len(p.queue), p.waiting))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("rank %d is not quiet: %s", e.rank, strings.Join(left, "; "))
	}
	return nil
}
