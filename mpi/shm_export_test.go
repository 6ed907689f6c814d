//go:build linux

package mpi

import "time"

// WithShmPolling sets how long the ring poller spins before it sleeps on
// its doorbell, and the longest it sleeps at once.
func WithShmPolling(spin, wait time.Duration) Option { return withShmPolling(spin, wait) }

// RingPeers is how many peers of c's rank take the shared-memory rings.
func (c *Comm) RingPeers() int {
	t, ok := c.e.tr.(*shmTransport)
	if !ok {
		return 0
	}
	r := t.routes.Load()
	if r == nil {
		return 0
	}
	n := 0
	for _, l := range r.local {
		if l >= 0 {
			n++
		}
	}
	return n
}

// SegmentPath is the shared-memory segment c's rank opened, "" if none.
func (c *Comm) SegmentPath() string {
	if t, ok := c.e.tr.(*shmTransport); ok && t.ep != nil {
		return c.e.opts.segment
	}
	return ""
}

// RingSend puts frame, as it is, on the ring from c's rank to world rank
// dst with stream: what a hostile rank could write there.
func (c *Comm) RingSend(dst int, stream byte, frame []byte) error {
	t := c.e.tr.(*shmTransport)
	t.smu.Lock()
	defer t.smu.Unlock()
	return t.ep.Send(t.routes.Load().local[dst], stream, frame, nil)
}

// PutHeader writes a frame header of kind from src, with tag, into a fresh
// buffer followed by payload.
func PutHeader(kind byte, src, tag int, payload []byte) []byte {
	b := make([]byte, hdrLen+len(payload))
	putHeader(b, header{kind: kind, src: src, tag: tag})
	copy(b[hdrLen:], payload)
	return b
}

// Frame kinds, for hostile frames.
const (
	KindEager = kEager
	KindCTS   = kCTS
)

// DrainYields is how often c's rank, waiting for a message, yielded its
// core while it took frames from the rings itself.
func (c *Comm) DrainYields() int64 {
	if t, ok := c.e.tr.(*shmTransport); ok {
		return t.yields.Load()
	}
	return 0
}
