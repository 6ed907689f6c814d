package mpi

import (
	"context"
	"fmt"
	"time"

	"github.com/gorun-hpc/gorun/mpi/internal/memnet"
	"github.com/gorun-hpc/gorun/mpi/internal/seam"
)

func init() {
	seam.MemoryNetwork = func(n *memnet.Network) any {
		return Option(func(o *Options) error {
			o.memory = n
			return nil
		})
	}
}

// memTransport carries a rank's frames over an in-memory network
// (internal/memnet), for tests: mpitest's Net gives Init the network with
// the option seam.MemoryNetwork makes, and Init uses it in place of NATS. Every frame is a
// binary header (wire.go) and its payload, a chunk's too.
type memTransport struct {
	e      *engine
	ep     *memnet.Endpoint
	mc     bool
	inbox  string // what an inbox frame's stream is called in errors
	mcast  string
	aborts string
}

func newMemTransport(e *engine, n *memnet.Network) *memTransport {
	return &memTransport{
		e:      e,
		ep:     n.Endpoint(e.rank),
		mc:     e.opts.Multicast && e.size > 2,
		inbox:  fmt.Sprintf("the in-memory inbox of rank %d", e.rank),
		mcast:  "the in-memory multicast stream",
		aborts: "the in-memory abort stream",
	}
}

func (t *memTransport) multicast() bool { return t.mc }

func (t *memTransport) start(ctx context.Context) error {
	e := t.e
	e.setLimits(t.ep.MaxPayload() - hdrLen) // a chunk has a binary header too
	t.ep.Attach(memnet.Handlers{
		Inbox:     func(src int, frame []byte) { t.decode(t.inbox, src, false, frame) },
		Multicast: func(src int, frame []byte) { t.decode(t.mcast, src, true, frame) },
		Abort:     func(src int, data []byte) { e.onAbort(t.aborts, src, data) },
		Lost:      e.peerCut,
		Closed: func(err error) {
			e.mu.Lock()
			e.lose(err)
			e.mu.Unlock()
		},
	})
	hellos, err := t.ep.Join(ctx, appendEntry(nil, e.own()))
	if err != nil {
		return fmt.Errorf("%w: rank %d: %v", ErrInit, e.rank, err)
	}
	peers := make([]hello, e.size)
	for r, b := range hellos {
		if peers[r], err = parseEntry(b); err != nil {
			return fmt.Errorf("%w: rank %d: rank %d's hello: %v", ErrInit, e.rank, r, err)
		}
	}
	e.setPeers(ctx, peers)
	return nil
}

func (t *memTransport) send(dst int, h header, data []byte) error {
	b := make([]byte, hdrLen+len(data))
	putHeader(b, h)
	copy(b[hdrLen:], data)
	return t.ep.Send(dst, b)
}

func (t *memTransport) decode(where string, src int, mc bool, frame []byte) {
	h, err := parseHeader(frame)
	if err != nil {
		t.e.reject(where, "length", "%d bytes, shorter than the %d-byte header", len(frame), hdrLen)
		return
	}
	t.e.onFrame(where, src, mc, h, frame[hdrLen:])
}

func (t *memTransport) abort(code int, _ time.Duration) {
	t.ep.Abort(abortPayload(t.e.rank, code))
}

func (t *memTransport) close(time.Duration) { t.ep.Close() }
