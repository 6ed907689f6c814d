// Package collectives provides MPI's collective operations over package
// mpi's communicators: Barrier, Bcast, Scatter, Scatterv, Gather,
// Allgather, Reduce, Allreduce, Alltoall, Scan and Exscan.
//
// # Usage
//
// Every rank of a communicator calls the same collectives in the same order:
//
//	world, err := mpi.Init(ctx)
//	...
//	part, err := collectives.Scatter(ctx, world, 0, data) // data read on rank 0 only
//	local := []float64{sum(part)}
//	total, err := collectives.Reduce(ctx, world, 0, local, collectives.Sum)
//
// The functions are generic. Reductions take numbers (mpi.Number) and an
// Op; the predefined Sum, Prod, Min and Max are generic functions, so
// collectives.Allreduce(ctx, c, xs, collectives.Sum) picks the right one.
// The other collectives take any element type. Numbers travel as raw
// little-endian bytes, without a per-element loop (the slice's own memory on
// little-endian hosts); other types travel with encoding/gob, so their
// fields must be exported. Results never share memory with the caller's
// data, which is never changed.
//
// # Isolation
//
// A collective's messages never match a receive of the program's, nor
// those of another collective: each communicator gets a shadow, a Dup made
// on its first collective call (Dup sends nothing), and each call on it has
// its own tags. Collectives work on any communicator, Split and Dup ones
// included. Calls on different communicators may run at the same time from
// different goroutines; calls on one communicator must not.
//
// # Mistakes are errors
//
// Calls that do not match — different roots, lengths that must agree but
// differ, Scatterv counts that are negative or do not add up, a root out of
// range, different element types — make every rank return an error that
// wraps ErrMismatch, ErrCounts or mpi.ErrRank and says which ranks passed
// what, as soon as the messages of the call have been exchanged, rather
// than a hang. Every message of a call's first phase carries a small header
// with what the ranks must agree on; those phases are disseminations or
// recursive doublings, after which every rank has heard from every other
// and takes the same decision. Small data rides in those same messages, so
// the check costs no extra round; large data moves after it. The
// communicator stays usable after such an error. Ranks that call different
// collectives at the same point are told so when their messages meet, which
// depends on the two collectives; otherwise they wait until ctx ends.
//
// Errors of the communicator (mpi.ErrClosed, mpi.ErrAborted,
// mpi.ErrConnLost) and ctx.Err() are returned wrapped.
//
// # Algorithms
//
//	Barrier              dissemination, ceil(log2 n) rounds
//	Bcast                binomial tree within a dissemination; large: then a
//	                     pipelined binomial tree (512 KiB segments)
//	Scatter, Scatterv    binomial tree within a dissemination; large: direct
//	Gather               binomial tree within a dissemination; large
//	                     contributions: direct to the root
//	Allgather            Bruck (dissemination), ceil(log2 n) rounds
//	Reduce, Allreduce    recursive doubling; large (over 256 KiB): ring
//	                     reduce-scatter, then ring allgather or gather to root
//	Alltoall             pairwise exchange in one round
//	Scan, Exscan         Hillis-Steele, ceil(log2 n) rounds
//
// The schedules (who sends what to whom at each step) are pure functions in
// schedule.go.
package collectives
