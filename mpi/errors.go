package mpi

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is: the errors returned by this
// package wrap them, often inside a *RankError that names the rank involved.
var (
	// ErrRank is returned when a rank argument is outside [0, Size()).
	ErrRank = errors.New("mpi: rank out of range")
	// ErrTag is returned for a negative tag (other than AnyTag on receive) or
	// a tag above MaxTag.
	ErrTag = errors.New("mpi: tag out of range")
	// ErrClosed is returned by any operation on a Comm after Close, and by
	// operations that Close interrupted.
	ErrClosed = errors.New("mpi: communicator closed")
	// ErrAborted is returned by every blocked or later operation once a rank
	// of the job has called Abort.
	ErrAborted = errors.New("mpi: job aborted")
	// ErrConnLost is returned by every blocked or later operation once this
	// rank's connection to the bus is gone (the server went away, or
	// dropped this rank as a slow consumer). A rank never reconnects:
	// messages may have been lost, so the job cannot go on.
	ErrConnLost = errors.New("mpi: connection to the bus lost")
	// ErrCanceled is returned by Wait on a request that Cancel withdrew, and
	// by a receive whose sender withdrew the message mid-way.
	ErrCanceled = errors.New("mpi: request canceled")
	// ErrInit is returned by Init when the job cannot be joined: a bad
	// launch environment, an unreachable bus, or ranks that never showed up.
	ErrInit = errors.New("mpi: init failed")
	// ErrTruncate is returned by RecvInto when a message does not fit its
	// buffer, and by RecvSlice when a message's length is not a whole number
	// of elements.
	ErrTruncate = errors.New("mpi: message does not fit (longer than the buffer, or not a whole number of elements)")
	// ErrPeerLost is returned, inside a *RankError naming the rank, by an
	// operation that waits for a rank that has closed its world and so
	// can never answer: a receive or Probe from it with no message of its
	// left, a send to it, or a SendAll. It comes at once, not after a
	// timeout: a rank tells the others when it closes, after everything it
	// sent. (A receive from AnySource is left waiting: another goroutine
	// of the rank may still send to it.)
	ErrPeerLost = errors.New("mpi: peer closed its world")
	// ErrPeerDied is ErrPeerLost (errors.Is says both) for a rank whose
	// process died: gorun tells every rank as soon as it sees the process
	// end, when the job goes on without it (gorun --on-failure continue),
	// and a rank that shares memory with it finds its pid gone; what waits
	// for the dead rank fails then, as for a rank that closed.
	ErrPeerDied error = peerDied{}
	// ErrProtocol is returned by every blocked or later operation once a
	// frame from another rank broke the protocol (a field out of range, a
	// frame that claims another sender, an offer naming a process that is
	// not the sender): the job cannot go on. Under gorun the rank says which
	// subject and field, and exits with status 1.
	ErrProtocol = errors.New("mpi: protocol error")
	// ErrNilContext is returned, wrapped with the call's name, by every
	// call that takes a context.Context when it is given a nil one (pass
	// context.Background() or context.TODO()). Such a call does nothing:
	// it takes no lock, sends and receives nothing, and the communicator
	// stays usable.
	ErrNilContext = errors.New("mpi: nil context.Context")
)

// nilContext is the error of call op given a nil ctx.
func nilContext(op string) error {
	return fmt.Errorf("mpi: %s: %w", op, ErrNilContext)
}

// RankError reports a failure on, or caused by, another rank.
type RankError struct {
	Rank int    // the other rank (in the communicator the operation used)
	Op   string // what was being done: "send", "recv", "abort", ...
	Err  error  // a sentinel above, or the cause
}

func (e *RankError) Error() string {
	return fmt.Sprintf("mpi: %s rank %d: %s", e.Op, e.Rank, trimPrefix(e.Err))
}

// Unwrap returns the underlying error, so errors.Is sees the sentinel.
func (e *RankError) Unwrap() error { return e.Err }

// AbortError is the error of operations interrupted by another rank's Abort.
// It wraps ErrAborted.
type AbortError struct {
	Rank int // world rank that called Abort
	Code int // the exit status it gave: its code, or 1 for a code outside [1, 255]
}

func (e *AbortError) Error() string {
	return fmt.Sprintf("mpi: job aborted by rank %d with code %d", e.Rank, e.Code)
}

// Unwrap returns ErrAborted.
func (e *AbortError) Unwrap() error { return ErrAborted }

// peerDied is ErrPeerDied: its own text, and ErrPeerLost for errors.Is.
type peerDied struct{}

func (peerDied) Error() string {
	return "mpi: peer died (its process ended)"
}
func (peerDied) Is(target error) bool { return target == ErrPeerLost }
