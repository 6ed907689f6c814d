package mpi

import (
	"fmt"
	"strings"

	"github.com/gorun-hpc/gorun/internal/trace"
)

// WithReadHook replaces the single-copy read (process_vm_readv) for a test:
// to count copies, or to refuse or fail them.
func WithReadHook(f func(pid int, addr uint64, buf []byte) error) Option {
	return func(o *Options) error {
		o.readHook = f
		return nil
	}
}

// ReadRemote is the real single-copy read.
var ReadRemote = readRemote

// FlowStats are the flow control's counters on one rank.
type FlowStats struct {
	CreditWaits int64 // sends that waited for eager credit
	PeakHeld    int64 // most unreceived eager bytes (with FrameCost each) from one peer at once
	PeakWindow  int64 // most rendezvous bytes granted towards this rank and not yet received
}

// FlowStats returns c's engine's counters.
func (c *Comm) FlowStats() FlowStats {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	return FlowStats{CreditWaits: e.stats.creditWaits, PeakHeld: e.stats.peakHeld, PeakWindow: e.stats.peakWindow}
}

// StartTrace turns this process's tracing on (as gorun --trace does at
// Init), keeping size events; 0 turns it off.
func StartTrace(size int) { trace.Start(0, size) }

// FrameCost is what each eager message costs in credit beside its bytes.
const FrameCost = frameCost

// Quiescent returns an error naming what c's engine still holds that a
// quiet job must not: a posted receive or an unexpected message, a send
// or a rendezvous in progress, a queued send, window not returned,
// unexpected bytes charged to a peer. Call it once every rank is done
// with the traffic it started (after a barrier).
func (c *Comm) Quiescent() error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	var left []string
	for id, q := range e.queues {
		if len(q.posted) > 0 || len(q.unexpected) > 0 {
			left = append(left, fmt.Sprintf("context %x: %d posted receives, %d unexpected messages", id, len(q.posted), len(q.unexpected)))
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
