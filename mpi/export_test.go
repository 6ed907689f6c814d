package mpi

import "github.com/gorun-hpc/gorun/internal/trace"

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
	CreditWaits int64 // sends that waited for eager credit, or went as a rendezvous for want of it
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
// quiet job must not (see internal/invariant).
func (c *Comm) Quiescent() error { return c.e.quiescent() }

// Waiting is what waits, unexpected, at c's rank from world rank src: how
// many messages, and the eager credit they hold (FrameCost each included).
func (c *Comm) Waiting(src int) (msgs int, held int64) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, q := range e.queues {
		for _, v := range q.unexpected {
			if v.src == src {
				msgs++
			}
		}
	}
	return msgs, e.peers[src].waiting
}

// CreditShare is the eager credit c's rank grants each peer.
func (c *Comm) CreditShare() int64 { return c.e.share }

// CreditLeft is the eager credit c's rank has left at world rank peer.
func (c *Comm) CreditLeft(peer int) int64 {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.e.peers[peer].left
}

// WindowFree is the rendezvous window c's rank has not granted.
func (c *Comm) WindowFree() int64 {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.e.window
}

// CreditReserve is the part of CreditShare that a peer's eager messages
// leave to its RTSs.
func (c *Comm) CreditReserve() int64 { return c.e.reserve(0) }
