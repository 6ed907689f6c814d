// Package collectives provides MPI's collective operations over package
// mpi's communicators: Barrier, Bcast, BcastInto, Scatter, Scatterv,
// Gather, Gatherv, Allgather, Allgatherv, Reduce, Allreduce,
// AllreduceInto, ReduceScatter, ReduceScatterBlock, Alltoall, Alltoallv,
// Scan and Exscan; and ReduceFunc and AllreduceFunc, with Loc, MinLoc and
// MaxLoc, for elements an Op would split.
//
// # Usage
//
// A whole program, run with `gorun -n 4 ./main.go` (see package mpi for
// gorun init and Main):
//
//	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
//		n := mpi.Must(collectives.BcastValue(ctx, world, 0, 1000))       // rank 0's n, everywhere
//		sum := mpi.Must(collectives.AllreduceValue(ctx, world, n*world.Rank(), collectives.Sum))
//		fmt.Println(world.Rank(), sum)
//		return nil
//	})
//
// Every call has a runnable example (`go doc -all
// github.com/gorun-hpc/gorun/collectives`). Every rank of a communicator
// calls the same collectives in the same order:
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
// little-endian hosts), and so do structs and arrays of numbers with
// exported fields, such as Loc[float64] (see plain.go); other types travel
// with encoding/gob, so their fields must be exported. Results never share memory with the caller's
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
// range, different element types, different collectives at the same point —
// make every rank return an error that wraps ErrMismatch, ErrCounts or
// mpi.ErrRank and says which ranks passed what, rather than hang. The first
// phase of every call is the same for every collective: each rank sends a
// small header with what the ranks must agree on up a tree to rank 0 (a star
// up to 64 ranks; through group leaders beyond; on ranks spread over hosts,
// through one leader per host, so that only the leaders' messages cross
// hosts: see mpi.Comm.Hosts), which merges them, takes the verdict and
// sends it back down. Small data rides in those messages, so a small call
// costs two hops (four on hosts) and 2(n-1) messages, the check included;
// large data moves in a second phase once the ranks agree. The
// communicator stays usable after such an error.
//
// Errors of the communicator (mpi.ErrClosed, mpi.ErrAborted,
// mpi.ErrConnLost) and ctx.Err() are returned wrapped; a nil ctx gets an
// error wrapping mpi.ErrNilContext at once. A call that ends with its
// ctx's error on one rank leaves the others' calls to end with theirs (or
// with an error of its own, where that rank had lent them data): as in
// MPI, a collective is not withdrawn halfway, and a communicator on which
// one ended so is not fit for more collectives. A reduction's Op that panics
// on one rank fails the call on the others with ErrOpPanicked (see there)
// and panics again on its own rank once the call is over there; the
// communicator stays usable either way.
//
// # Algorithms
//
// On a bus where every message goes through one server, the number of
// messages is what small calls cost; for large ones, the bytes each rank
// moves. Measured with 8 ranks on 2 cores, a barrier as a star around rank
// 0 takes half the time of a dissemination barrier, a quarter at 32 ranks.
// On a communicator that spans the world (mpi.Comm.Multicast), one publish
// reaches every rank: the server fans it out, so data that every rank needs
// enters the bus once. Between ranks of one machine, mpi copies large
// messages straight out of the sender's memory, and the bulk phases receive
// straight into the result.
//
//	Barrier              star (2 hops); the answer is one fanned-out publish
//	Bcast                up to 60 KiB: with the check; larger: one
//	                     fanned-out publish from the root, or (on a part of
//	                     the world) a pipelined binomial tree (512 KiB segments)
//	Scatter, Scatterv    up to 60 KiB: with the check; larger: root to each
//	Gather               contributions up to 16 KiB: with the check; larger:
//	                     straight to the root
//	Allgather            up to 16 KiB per rank, 256 KiB in all: with the
//	                     check; larger: each rank's data in one fanned-out
//	                     publish, or Bruck (ceil(log2 n) rounds)
//	Reduce, Allreduce    up to 60 KiB: combined in rank order up the tree;
//	                     larger: reduce-scatter (recursive halving for a
//	                     power-of-two size up to 4 MiB, else a ring), then
//	                     each rank publishes its reduced block once (or a
//	                     ring, or recursive doubling, allgather), or the
//	                     blocks are gathered to the root
//	Alltoall             up to 16 KiB per rank: with the check; larger:
//	                     pairwise exchange, all at once
//	Scan, Exscan         up to 16 KiB: with the check; larger: Hillis-Steele
//	Gatherv              as Gather
//	Allgatherv, Alltoallv,
//	ReduceScatter(Block) after the check: Bruck (or one fanned-out publish),
//	                     or a pairwise exchange, all at once
//	ReduceFunc,          after the check: whole vectors up a binomial tree
//	AllreduceFunc        (and back down it)
//
// Where every rank of a communicator is on one host's shared memory (gorun
// gives each host's ranks a segment), the communicator also has flags
// there: a Barrier, and a Reduce, Allreduce, Scan, Exscan, Bcast, Gather
// or Allgather whose data fits a slot (4144 bytes a rank: 4 KiB and a
// little more), or a Scatter of numbers whose data fits root's, wait on
// them alone, each rank having put its data in its slot first, and need no
// message; the slots' headers are the check (see posted.go). Larger data
// is lent: its owner posts where it lies, and the ranks that need it copy
// it out of the owner's memory (lent.go): root's whole data for a Bcast,
// each rank's block of it for a Scatter of numbers, each contribution for
// root (Gather) or every rank (Allgather); for an Allreduce or a Reduce,
// each rank combines one block of everyone's data, then the others' blocks
// are copied out of their owners' results (by root alone on a Reduce:
// lentreduce.go). BcastInto and AllreduceInto write into the caller's
// buffers, as MPI does, and then allocate nothing. The others arrive on
// the flags and run as above.
//
// The schedules (who sends what to whom at each step) are pure functions in
// schedule.go.
package collectives
