package mpi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/subject"
)

// TestPeerLostReturnsWindow: a rendezvous receive whose sender leaves
// before its chunks come fails with ErrPeerLost, and the window it was
// granted comes back, so that the next large message, from another rank,
// still gets through.
func TestPeerLostReturnsWindow(t *testing.T) {
	j := startHostile(t, 3, WithSingleCopy(false))
	defer j.close()
	c0 := j.comms[0]
	full := int64(c0.e.opts.RendezvousWindow)
	size := c0.e.opts.RendezvousWindow // the whole window: nothing else gets through while it is granted
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Rank 1, as a raw connection with its key: an RTS, no chunks, then bye.
	r := c0.Irecv(1, 3)
	nc := j.as(t, 1, make(chan error, 4))
	inbox := subject.Inbox(j.job, 0, 1)
	if err := nc.Publish(inbox, frame(header{kind: kRTS, src: 1, tag: 3, id: 7, n: uint64(size)}, nil)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	for granted := false; !granted; time.Sleep(time.Millisecond) {
		c0.e.mu.Lock()
		granted = c0.e.window < full
		c0.e.mu.Unlock()
		if ctx.Err() != nil {
			t.Fatal("rank 0 granted no window to the RTS")
		}
	}
	if err := nc.Publish(inbox, frame(header{kind: kBye, src: 1}, nil)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	if _, err := r.Wait(ctx); !errors.Is(err, ErrPeerLost) {
		t.Fatalf("the receive from the rank that left: %v, want ErrPeerLost", err)
	}
	c0.e.mu.Lock()
	w := c0.e.window
	c0.e.mu.Unlock()
	if w != full {
		t.Fatalf("window %d after the receive failed, want all of it back (%d)", w, full)
	}
	// And a window-sized message from rank 2 arrives.
	go j.comms[2].Send(ctx, 0, 4, make([]byte, size))
	if b, _, err := c0.Recv(ctx, 2, 4); err != nil || len(b) != size {
		t.Fatalf("rank 2's message: %d bytes, %v", len(b), err)
	}
}
