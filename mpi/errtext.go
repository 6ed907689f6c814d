package mpi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// How errors read: "mpi: " once, at the front, however many of this
// package's errors one wraps; a receive that fails because its peer left
// says what it waited for, and what that peer sent that is still here.

// errorf is fmt.Errorf for a message that starts with "mpi: ": the errors
// it formats lose their own "mpi: " prefix in the text (errors.Is and
// errors.As still see them).
func errorf(format string, a ...any) error {
	for i, v := range a {
		if err, ok := v.(error); ok {
			a[i] = unprefixed{err}
		}
	}
	return fmt.Errorf(format, a...)
}

// unprefixed is err, written without its "mpi: " prefix.
type unprefixed struct{ err error }

func (u unprefixed) Error() string { return trimPrefix(u.err) }
func (u unprefixed) Unwrap() error { return u.err }

// trimPrefix is err's text without a leading "mpi: ".
func trimPrefix(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.TrimPrefix(err.Error(), "mpi: ")
}

// lostRecv is the cause of a receive that can never match because its
// source left: what the receive waited for, and the tags of the messages
// from that source that wait unreceived on the same communicator (sent
// with another tag than the receive's).
type lostRecv struct {
	tag     int    // the receive's tag, or AnyTag
	comm    string // the communicator's name
	waiting []int  // tags of the source's unreceived messages here, sorted
	counts  []int  // how many of each
	err     error  // why the source cannot answer (ErrPeerLost)
}

func (l *lostRecv) Error() string {
	var b strings.Builder
	if l.tag == AnyTag {
		b.WriteString("any tag")
	} else {
		b.WriteString("tag " + strconv.Itoa(l.tag))
	}
	b.WriteString(", comm " + l.comm + ": " + trimPrefix(l.err))
	if len(l.waiting) == 0 {
		return b.String()
	}
	b.WriteString("; unreceived here from it: ")
	for i, t := range l.waiting {
		if i > 0 {
			b.WriteString(", ")
		}
		if l.counts[i] == 1 {
			b.WriteString("a message with tag " + strconv.Itoa(t))
		} else {
			b.WriteString(strconv.Itoa(l.counts[i]) + " messages with tag " + strconv.Itoa(t))
		}
	}
	b.WriteString(" (a tag mismatch?)")
	return b.String()
}

func (l *lostRecv) Unwrap() error { return l.err }

// recvLost adds to err, the error of receive r whose source, world rank
// w, left (a *RankError), the receive's tag and communicator and the
// messages from w waiting unreceived on that communicator. Called with
// e.mu held.
func (e *engine) recvLost(r *Request, w int, err error) error {
	return e.waitLost(r.c, r.comm, r.tag, w, err)
}

// waitLost is recvLost for a receive or a probe of tag on c (context
// comm). Called with e.mu held.
func (e *engine) waitLost(c *Comm, comm uint64, tag, w int, err error) error {
	re, ok := err.(*RankError)
	if !ok {
		return err
	}
	l := &lostRecv{tag: tag, comm: c.label(), err: re.Err}
	if q := e.queues[comm]; q != nil {
		for _, v := range q.unexpected {
			if v.src != w {
				continue
			}
			if i, found := slices.BinarySearch(l.waiting, v.tag); found {
				l.counts[i]++
			} else {
				l.waiting = slices.Insert(l.waiting, i, v.tag)
				l.counts = slices.Insert(l.counts, i, 1)
			}
		}
	}
	return &RankError{Rank: re.Rank, Op: re.Op, Err: l}
}
