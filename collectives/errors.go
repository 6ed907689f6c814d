package collectives

import (
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Sentinel errors. Every rank of a collective call that goes wrong because
// of an argument returns an error wrapping one of these (or mpi.ErrRank for a
// root out of range), whichever rank passed the bad argument: the ranks agree
// on the outcome before any of them returns. Test with errors.Is.
var (
	// ErrMismatch is returned when the ranks' calls disagree: different
	// roots, different lengths where they must be equal (Reduce, Allreduce,
	// Scan, Exscan, Alltoall), different element types, or different
	// collectives at the same point. The message names two ranks that
	// disagree and what each passed.
	ErrMismatch = errors.New("collectives: ranks' calls do not match")
	// ErrCounts is returned when Scatterv's counts are negative, are not one
	// per rank, or do not add up to len(data) on the root, and when
	// Alltoall's len(data) is not a multiple of Size(); and when
	// Alltoallv's or ReduceScatter's counts are so on some rank, or
	// ReduceScatterBlock's len(data) is not a multiple of Size().
	ErrCounts = errors.New("collectives: invalid counts")
	// ErrEncode is returned when a rank cannot encode or decode its
	// elements with encoding/gob (for example a struct with no exported
	// fields).
	ErrEncode = errors.New("collectives: cannot encode elements")
	// ErrConcurrent is returned when two collective calls ran at once on one
	// communicator on some rank (from two goroutines), which is not
	// supported: every rank numbers a communicator's calls in the order it
	// makes them, so two goroutines would pair one rank's call with another
	// rank's other call. When a rank sees the second call begin before its
	// part of the first has left it, both calls fail, on every rank, and so
	// does every later collective on that communicator (a Dup gives a fresh
	// one). An overlap seen later still fails both calls on that rank and
	// every later call everywhere, but a rank whose first call ended before
	// the news came keeps what it computed. Two goroutines whose calls never
	// overlap on any rank cannot be told from one, and must make their
	// calls in the same order on every rank.
	ErrConcurrent = errors.New("collectives: two collective calls at once on one communicator")
	// ErrOpPanicked is returned when a reduction's Op (Reduce, Allreduce,
	// Scan, Exscan) panicked on another rank. The rank where it panicked
	// panics again with the same value once its part of the call is over;
	// the others return this error rather than wait for it: every rank of
	// the call where the data went with the call's check (up to 60 KiB per
	// rank, 16 KiB for a scan), and otherwise every rank whose result
	// depends on the panicking rank's (every rank of Allreduce, the root of
	// Reduce, the ranks above it in Scan). The communicator stays usable.
	// A call on the shared-memory flags (every rank on one host, at most
	// 4144 bytes a rank: see the package doc) is combined by each rank
	// itself: the Op panics where it panics, and the other ranks return
	// their own results, which its panic did not touch.
	ErrOpPanicked = errors.New("collectives: the reduction's Op panicked")
)

// Error codes of local errors, as they travel to the other ranks.
const (
	codeNone uint8 = iota
	codeRank
	codeCounts
	codeEncode
	codeMismatch
	codeConcurrent
	codePanic
	codeEnd
)

func sentinel(code uint8) error {
	switch code {
	case codeRank:
		return mpi.ErrRank
	case codeCounts:
		return ErrCounts
	case codeEncode:
		return ErrEncode
	case codeConcurrent:
		return ErrConcurrent
	case codePanic:
		return ErrOpPanicked
	}
	return ErrMismatch
}

// argError is a wrong argument found by one rank, as every rank reports it:
// the same text, plus on the other ranks which rank found it.
type argError struct {
	text string // "collectives: Scatterv: ...: <sentinel's message>"
	from int    // the rank that found it, or -1 on that rank itself
	err  error  // the sentinel
}

func (e *argError) Error() string {
	if e.from < 0 {
		return e.text
	}
	return fmt.Sprintf("%s (reported by rank %d)", e.text, e.from)
}

func (e *argError) Unwrap() error { return e.err }

// newArgError returns the local error for code, with a message made of the
// collective's name and detail.
func newArgError(k kind, code uint8, detail string) *argError {
	err := sentinel(code)
	return &argError{text: fmt.Sprintf("collectives: %s: %s: %v", k, detail, err), from: -1, err: err}
}

// opError wraps a failure of the communicator (closed, aborted, peer lost,
// ctx done) with the collective's name.
func opError(k kind, err error) error {
	return fmt.Errorf("collectives: %s: %w", k, err)
}
