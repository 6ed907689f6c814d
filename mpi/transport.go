package mpi

import (
	"context"
	"time"
)

// toAll, as the destination of a frame, is every other rank of the world:
// one multicast (SendAll).
const toAll = -1

// transport moves the engine's frames between the ranks of one job, and
// nothing else: the engine decides what to send and checks what arrives;
// the transport knows where the bytes go. natsTransport (natstransport.go)
// is the one a job uses; memTransport (memtransport.go) is an in-memory one
// for tests, with seeded delays, reordering across senders, cut-off ranks
// and stopped receivers.
//
// What a transport promises:
//
//   - Frames from one sender on one stream arrive in the order sent. A
//     rank's inbox (frames sent to it alone) and the multicast stream
//     (frames sent toAll) are two streams, delivered independently: a frame
//     on one may overtake a frame sent earlier on the other. Frames of
//     different senders arrive in any order.
//   - Frames reach the engine through its handlers: onFrame for every frame
//     (mc tells the stream), onAbort for another rank's Abort, lose when the
//     connection is gone, peerCut when another rank is known to be gone.
//     A transport calls the inbox and multicast handlers each from one
//     goroutine at a time, never with e.mu held.
//   - send does not keep data after it returns, and may be called with
//     e.mu held: it never calls back into the engine.
type transport interface {
	// start returns once every rank is reachable and has announced its
	// hello: it calls e.setLimits with what a frame's payload may hold
	// before it sends anything, and e.setPeers with every rank's hello.
	start(ctx context.Context) error
	// multicast reports whether send takes toAll.
	multicast() bool
	// send puts one frame on the wire to world rank dst, or to every
	// other rank (toAll).
	send(dst int, h header, data []byte) error
	// abort tells every other rank that this one aborted the job with
	// the exit status code, waiting at most d for it to leave.
	abort(code int, d time.Duration)
	// close waits at most d for what was sent to leave, and disconnects.
	close(d time.Duration)
}

// A drainer is a transport that a goroutine about to block in Wait can
// help: drain takes frames in the waiter's own goroutine for a short while,
// rather than park it for the transport's goroutine to wake, and reports
// whether done was closed meanwhile.
type drainer interface {
	drain(done <-chan struct{}) bool
}
