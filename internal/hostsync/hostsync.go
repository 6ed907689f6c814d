// Package hostsync lets package collectives use what package mpi knows of
// a communicator's host without mpi exporting it: flags and slots in the
// host's shared memory, on which a collective of ranks that are all on one
// host can run without a message. mpi sets Open when it is initialised.
package hostsync

import (
	"context"
	"errors"
)

// ErrWithdrawn is what Flags.Copy's error wraps where the rank that lent
// the memory withdrew its post before the copy ended.
var ErrWithdrawn = errors.New("the rank withdrew what it lent")

// Flags are one rank's view of a communicator's flags in its host's
// shared memory, where every rank of the communicator is on that host.
// Every rank arrives at each of its blocking collective calls, in order,
// with the call's number and kind.
type Flags interface {
	// Arrive records that this rank has come to its call number seq (the
	// first is 1), of kind.
	Arrive(seq uint32, kind byte)
	// Wait returns once every rank has arrived at call seq; same reports
	// whether every rank arrived there with kind (false: a rank called
	// another collective at that point). It returns ctx's error if ctx
	// ends first, and an error wrapping mpi.ErrPeerLost (an
	// *mpi.RankError naming it) once a rank of the communicator is gone,
	// or the world's failure, as no wait could end then; so do Post and
	// Collect.
	Wait(ctx context.Context, seq uint32, kind byte) (same bool, err error)
	// Post is Arrive for a call that gives the others data (at most
	// SlotData bytes) in shared memory: it waits until no rank reads this
	// rank's slot for the call any more, puts data and args there, and
	// arrives at seq. Where it returns an error, it has not arrived.
	Post(ctx context.Context, seq uint32, kind byte, args uint64, data []byte) error
	// Collect waits until every rank has arrived at call seq, and calls
	// each with every rank's data for it, in rank order, if every rank
	// posted it with kind and args; same reports whether they all did
	// (false: each was not called). The data is shared memory, which
	// stays as it is until this rank arrives at its next call.
	Collect(ctx context.Context, seq uint32, kind byte, args uint64, each func(rank int, data []byte)) (same bool, err error)
	// SlotData is the most data a rank can Post.
	SlotData() int
	// Lend returns where data lies in this process's memory, for the
	// other ranks to Copy while this rank keeps it as it is; ok is false
	// where this rank lends nothing (single copies are off). The caller
	// keeps data alive, and unchanged, until the others are done, or it
	// has withdrawn what it posted (Withdraw).
	Lend(data []byte) (addr uint64, ok bool)
	// Copy copies len(dst) bytes at addr in the memory of rank, which lent
	// them (Lend) in what it posted for call seq, into dst. It returns an
	// error where this rank cannot read rank's memory (another machine,
	// single copies off, a process not vouched for, not permitted), or
	// not there, or (wrapping ErrWithdrawn) where rank withdrew its post
	// before the copy ended: then dst holds nothing of use.
	Copy(seq uint32, rank int, addr uint64, dst []byte) error
	// Withdraw takes back what this rank lent in its post for call seq: a
	// Copy of it fails from then on, and so does one under way. The post
	// stays as it was for Collect.
	Withdraw(seq uint32)
}

// Open returns the flags of c (an *mpi.Comm), or nil where c has none: a
// rank of c on another host, or no shared memory, or no room for more. It
// answers alike on every rank of c.
var Open = func(c any) Flags { return nil }
