// Package trace records a rank's timeline for gorun --trace: a complete
// event for every gorun call the program makes, with its arguments, and
// the message of each send and each receive, from which the trace's flow
// arrows go from a send to the receive that matched it. Package mpi and
// collectives record; gorun collects every rank's events when the rank
// closes its world and writes one file in Chrome's trace-event format
// (Write), which Perfetto and chrome://tracing open. It imports only the
// standard library, so the launcher uses it without linking package mpi.
//
// A rank keeps its events in a ring of a fixed size: a long job keeps its
// last events, and says how many it dropped. With tracing off (On returns
// nil) recording costs one atomic load.
package trace

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one call, or one message of a call (Op "" and a Flow).
type Event struct {
	Op    string `json:"op,omitempty"`
	Start int64  `json:"ts"`          // Unix nanoseconds, the rank's clock
	Dur   int64  `json:"d,omitempty"` // nanoseconds
	Peer  int    `json:"p,omitempty"` // communicator rank, for calls with one; see HasPeer
	Tag   int    `json:"t,omitempty"` // see HasPeer
	Bytes int    `json:"b,omitempty"` // bytes sent or received
	Comm  string `json:"c,omitempty"` // communicator name
	Root  int    `json:"r,omitempty"` // a collective's root; see HasRoot
	Tasks int    `json:"k,omitempty"` // pool: the tasks this rank ran in the call
	Flags uint8  `json:"f,omitempty"` // HasPeer, HasRoot, FlowOut, FlowIn
	Flow  Flow   `json:"m,omitempty"` // the message, with FlowOut or FlowIn
}

// Flags of an Event.
const (
	HasPeer    uint8 = 1 << iota // Peer and Tag are set
	HasRoot                      // Root is set
	FlowOut                      // the event sends Flow (at its start)
	FlowIn                       // the event received Flow (at its end)
	Unfinished                   // a call still blocked when the trace was taken (Dur: so far)
)

// Flow names one message: the n-th message from world rank Src to world
// rank Dst on communicator context Comm with Tag. Both ends count their
// messages per (peer, context, tag) in the order MPI matches them, so a
// send and the receive that matched it name the same Flow.
type Flow struct {
	Src  int    `json:"s"`
	Dst  int    `json:"d"`
	Comm uint64 `json:"c"`
	Tag  int    `json:"t"`
	N    uint32 `json:"n"`
}

// Tracer is one rank's ring of events.
type Tracer struct {
	mu      sync.Mutex
	rank    int
	ring    []Event
	next    int    // where the next event goes
	total   uint64 // events recorded, dropped ones included
	taken   uint64 // events given away by Drain
	sent    map[flowKey]uint32
	arrived map[flowKey]uint32
}

type flowKey struct {
	peer int
	comm uint64
	tag  int
}

var current atomic.Pointer[Tracer]

// On returns the tracer, or nil when tracing is off.
func On() *Tracer { return current.Load() }

// Start turns tracing on for this process, as world rank rank, keeping the
// last size events; size < 1 turns it off.
func Start(rank, size int) {
	if size < 1 {
		current.Store(nil)
		return
	}
	current.Store(&Tracer{rank: rank, ring: make([]Event, 0, size), sent: map[flowKey]uint32{}, arrived: map[flowKey]uint32{}})
}

// Now is the time events are stamped with.
func Now() int64 { return time.Now().UnixNano() }

// Record adds e.
func (t *Tracer) Record(e Event) {
	t.mu.Lock()
	if len(t.ring) < cap(t.ring) {
		t.ring = append(t.ring, e)
	} else {
		t.ring[t.next] = e
	}
	t.next = (t.next + 1) % cap(t.ring)
	t.total++
	t.mu.Unlock()
}

// Sent numbers the next message this rank sends to world rank dst on
// context comm with tag.
func (t *Tracer) Sent(dst int, comm uint64, tag int) Flow {
	return Flow{Src: t.rank, Dst: dst, Comm: comm, Tag: tag, N: t.next1(t.sent, flowKey{dst, comm, tag})}
}

// Arrived numbers the next message matched from world rank src on context
// comm with tag.
func (t *Tracer) Arrived(src int, comm uint64, tag int) Flow {
	return Flow{Src: src, Dst: t.rank, Comm: comm, Tag: tag, N: t.next1(t.arrived, flowKey{src, comm, tag})}
}

// next1 returns counts[k] and adds one to it.
func (t *Tracer) next1(counts map[flowKey]uint32, k flowKey) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := counts[k]
	counts[k] = n + 1
	return n
}

// Events returns the events kept, oldest first, and how many were
// dropped to keep the ring's size so far.
func (t *Tracer) Events() ([]Event, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eventsLocked()
}

func (t *Tracer) eventsLocked() ([]Event, uint64) {
	out := make([]Event, 0, len(t.ring))
	if len(t.ring) == cap(t.ring) {
		out = append(out, t.ring[t.next:]...)
		out = append(out, t.ring[:t.next]...)
	} else {
		out = append(out, t.ring...)
	}
	return out, t.total - t.taken - uint64(len(out))
}

// Drain returns what Events does and empties the ring: a rank that gives
// its trace twice (when gorun stops the job, then at Close) gives each
// event once.
func (t *Tracer) Drain() ([]Event, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out, dropped := t.eventsLocked()
	t.taken += uint64(len(out))
	t.ring, t.next = t.ring[:0], 0
	return out, dropped
}

// Chunk is what a rank sends gorun of its trace, in lines of at most
// contract.MaxStateLine bytes: a part of its events, and the count of
// those dropped.
type Chunk struct {
	Dropped uint64  `json:"dropped"`
	Events  []Event `json:"events"`
}
