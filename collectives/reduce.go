package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// reduceInline is the largest Reduce or Allreduce (in bytes per rank) whose
// data goes with the call's check and is combined up the agreement tree;
// larger ones run, after the check, a reduce-scatter and an allgather (or a
// gather to the root), which move 2(n-1)/n of the data per rank, spread over
// every rank.
const reduceInline = 60 << 10

// Reduce combines the data of every rank element-wise with op and returns
// the result on root, nil on the other ranks. Every rank must pass the same
// root and the same len(data). data is not changed, and the result never
// shares memory with it. It panics if op is nil.
//
// Where every rank of c is on one host's shared memory, up to 4144 bytes
// (4 KiB and a little more) per rank, each rank puts its data in a slot
// there, waits until all have, and combines everyone's itself in rank
// order: no message, one wait. Larger data, the ranks lend (where they may
// read each other's memory: mpi.WithSingleCopy, the default), as in
// Allreduce, and root alone copies the reduced blocks.
// Else up to 60 KiB per rank, the data goes with the call's check to rank 0,
// which combines it in rank order and sends the result to root. Larger data
// is reduced after the check by a reduce-scatter (recursive halving on a
// power-of-two communicator up to 4 MiB, a ring otherwise), and root
// gathers the reduced blocks.
//
// Every rank returns an error wrapping ErrMismatch if the ranks pass
// different roots, lengths or element types (naming two ranks and what
// they passed), mpi.ErrRank if root is out of range on any rank; and wraps
// the mpi errors and ctx.Err().
func Reduce[T mpi.Number](ctx context.Context, c *mpi.Comm, root int, data []T, op Op[T]) ([]T, error) {
	return reduce(ctx, c, kReduce, root, data, op)
}

// Allreduce combines the data of every rank element-wise with op and
// returns the result on every rank, the same to the last bit everywhere.
// Every rank must pass the same len(data). data is not changed, and the
// result never shares memory with it. It panics if op is nil.
//
// Where every rank of c is on one host's shared memory, up to 4144 bytes
// (4 KiB and a little more) per rank, each rank puts its data in a slot
// there, waits until all have, and combines everyone's itself in rank
// order: no message, one wait. Larger data, the ranks lend (where they may
// read each other's memory: mpi.WithSingleCopy, the default): each rank
// combines one block of the vector from every rank's data, copied
// straight out of that rank's memory, then copies the other blocks out of
// their owners' results; three waits, no message (AllreduceInto, into a
// buffer of the caller's, allocates nothing).
// Else up to 60 KiB per rank, the data goes with the call's check to rank 0,
// which combines it in rank order and sends the result to every rank (two
// hops). Larger data is reduced after the check by a reduce-scatter
// (recursive halving on a power-of-two communicator up to 4 MiB, a ring
// otherwise), after which each rank publishes its reduced block once for
// the bus to fan out (on a communicator that spans the world; else the
// reduce-scatter's steps run backwards: Rabenseifner, or Patarasuk and
// Yuan's ring).
//
// Every rank returns an error wrapping ErrMismatch if the ranks pass
// different lengths or element types (naming two ranks and their lengths);
// and wraps the mpi errors and ctx.Err().
func Allreduce[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, op Op[T]) ([]T, error) {
	return reduce(ctx, c, kAllreduce, 0, data, op)
}

// AllreduceInto is Allreduce into out, as MPI_Allreduce: out, as long as
// data, receives the result, and nothing is allocated for it. out may be
// data itself, for the result in place of the data (as MPI_IN_PLACE), or
// else must not overlap it.
//
// Where every rank of c is on one host's shared memory and may read the
// others' memory (mpi.WithSingleCopy, the default), data larger than a
// slot (4144 bytes) is reduced with no message at all: each rank combines
// one block of every rank's data, copied straight out of that rank's
// memory, into its out, then copies the other blocks out of the others'
// out; a loop that reduces a large vector every step then allocates and
// zeroes nothing for it. Elsewhere it runs as Allreduce does, and copies
// the result into out.
//
// The errors are Allreduce's, and one wrapping ErrCounts on every rank
// where some rank's out is not as long as its data. It panics if op is
// nil.
func AllreduceInto[T mpi.Number](ctx context.Context, c *mpi.Comm, data, out []T, op Op[T]) (err error) {
	if op == nil {
		panic("collectives: Allreduce: nil Op")
	}
	x, err := begin(ctx, c, kAllreduce, infoOf[T](), 0, len(data))
	if err != nil {
		return err
	}
	defer func() { _, err = done[T](x, nil, err) }()
	if len(out) != len(data) {
		x.fail(codeCounts, "len(out) = %d, want len(data) = %d", len(out), len(data))
	}
	res, err := reduceBody(x, 0, data, op, out)
	if err == nil && len(res) == len(out) && len(res) > 0 && &res[0] != &out[0] {
		copy(out, res)
	}
	return err
}

func reduce[T mpi.Number](ctx context.Context, c *mpi.Comm, k kind, root int, data []T, op Op[T]) (out []T, err error) {
	if op == nil {
		panic(fmt.Sprintf("collectives: %s: nil Op", k))
	}
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, root, len(data))
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	return reduceBody(x, root, data, op, nil)
}

// reduceBody is Reduce's or Allreduce's work (x.k), once begun; into, where
// not nil, is where an Allreduce's result may go (AllreduceInto: it copies
// the result there where it is not already).
func reduceBody[T mpi.Number](x *call, root int, data []T, op Op[T], into []T) ([]T, error) {
	k, elem := x.k, x.elem
	if k == kReduce {
		x.checkRoot(root)
	}
	if x.posts {
		if out, done, err := postedReduce(x, root, data, op, into); done {
			return out, err
		}
	}
	x.markers = true
	r := &reducer[T]{x: x, op: op, data: data}
	small := len(data)*elem.size <= reduceInline
	common, mine, err := x.agree(func(kids [][]byte) []byte {
		if !small {
			return nil
		}
		r.acc = clone(data)
		return r.combineUp(kids)
	}, func(all []byte) downPayload {
		x.st.info = 0
		if all == nil {
			return downPayload{}
		}
		x.st.info = 1
		if k == kAllreduce {
			return downPayload{common: all}
		}
		per := make([][]byte, x.size)
		per[root] = all
		return downPayload{per: per}
	})
	if err != nil {
		return nil, err
	}
	if x.st.info == 1 {
		res := common
		if k == kReduce {
			if x.rank != root {
				return nil, nil
			}
			res = mine
		}
		out, err := mpi.FromBytes[T](res)
		if err != nil || len(out) != len(data) {
			return nil, fmt.Errorf("collectives: %s: rank %d got %d bytes for %d elements", x.k, x.rank, len(res), len(data))
		}
		return out, nil // the received message's memory, or on rank 0 its own acc
	}
	if x.size == 1 {
		// Nothing to combine: the ring below would take no step and leave
		// its zeroed acc as the result.
		return clone(data), nil
	}
	if r.halving() {
		r.acc = clone(data)
	} else {
		// The ring receives every block it combines straight into acc.
		r.acc = make([]T, len(data))
	}
	if err := r.reduceScatter(); err != nil {
		return nil, err
	}
	if k == kAllreduce {
		if err := r.allgather(); err != nil {
			return nil, err
		}
		return r.acc, nil
	}
	if err := r.gatherBlocks(root); err != nil || x.rank != root {
		return nil, err
	}
	return r.acc, nil
}

// reducer is the state of one rank's Reduce or Allreduce.
type reducer[T mpi.Number] struct {
	x    *call
	op   Op[T]
	data []T // the caller's; never written
	acc  []T // this rank's partial result, then the result
}

// combineUp combines this rank's data with its children's partial results,
// in rank order (the children's subtrees follow this rank's, in order), and
// returns the wire form of the result. It returns nil, leaving acc alone,
// if a child sent none or one of another length: a mismatched call, which
// the verdict will report.
func (r *reducer[T]) combineUp(kids [][]byte) []byte {
	ins := make([][]T, len(kids))
	for i, p := range kids {
		in, err := mpi.FromBytes[T](p) // p is ours: no copy when aligned
		if p == nil || err != nil || len(in) != len(r.acc) {
			return nil
		}
		ins[i] = in
	}
	for _, in := range ins {
		if !apply(r.x, r.op, r.acc, in) {
			return nil // the verdict reports the panic
		}
	}
	return mpi.AsBytes(r.acc)
}

// block returns block i of acc's n blocks.
func (r *reducer[T]) block(o []int, i int) []T { return r.acc[o[i]:o[i+1]] }

// halvingMax is the largest Reduce or Allreduce (bytes per rank) that uses
// recursive halving and doubling on a power-of-two communicator. Both that
// and the ring move 2(n-1)/n of the data per rank; halving takes fewer
// steps (2 log2 n, not 2(n-1)), and the ring smaller messages that flow
// better. Measured with 8 ranks on 2 cores, through the bus: 800 KB 22 ms
// against 31 ms, 4 MB even, 8 MB 155 ms against 135 ms. With single copies
// on one machine the two are within 15% of each other from 800 KB to 8 MB.
const halvingMax = 4 << 20

// reduceScatter leaves this rank with the block ownedBlock names, of
// the result: by recursive halving when the size is a power of two and the
// data at most halvingMax bytes (log2 n steps), by a ring otherwise (n-1
// steps).
func (r *reducer[T]) reduceScatter() error {
	if r.halving() {
		return r.halvingReduceScatter()
	}
	return r.ringReduceScatter()
}

// allgather passes the reduced blocks around, undoing reduceScatter.
func (r *reducer[T]) allgather() error {
	if r.x.c.Multicast() {
		return r.fanAllgather()
	}
	if r.halving() {
		return r.doublingAllgather()
	}
	return r.ringAllgather()
}

func (r *reducer[T]) halving() bool {
	return isPow2(r.x.size) && len(r.data)*r.x.elem.size <= halvingMax
}

// span returns acc's elements of blocks [lo, hi).
func (r *reducer[T]) span(o []int, lo, hi int) []T { return r.acc[o[lo]:o[hi]] }

func (r *reducer[T]) halvingReduceScatter() error {
	x := r.x
	n := x.size
	o := offsets(blockCounts(len(r.acc), n))
	for i := range ceilLog2(n) {
		p, slo, shi, klo, khi := halvingStep(x.rank, n, i)
		b, err := x.exchange(phaseData, p, x.outgoing(mpi.AsBytes(r.span(o, slo, shi))), p)
		if err != nil {
			return err
		}
		dst := r.span(o, klo, khi)
		if x.marker(len(b), len(dst)*x.elem.size) {
			continue
		}
		in, err := mpi.FromBytes[T](b)
		if err != nil || len(in) != len(dst) {
			return fmt.Errorf("collectives: %s: rank %d sent %d bytes, want %d elements", x.k, p, len(b), len(dst))
		}
		apply(x, r.op, dst, in)
	}
	return nil
}

func (r *reducer[T]) doublingAllgather() error {
	x := r.x
	n := x.size
	o := offsets(blockCounts(len(r.acc), n))
	for i := ceilLog2(n) - 1; i >= 0; i-- {
		p, slo, shi, klo, khi := halvingStep(x.rank, n, i)
		b, err := x.exchange(phaseData, p, x.outgoing(mpi.AsBytes(r.span(o, klo, khi))), p)
		if err != nil {
			return err
		}
		dst := r.span(o, slo, shi)
		if x.marker(len(b), len(dst)*x.elem.size) {
			continue
		}
		if len(b) != len(dst)*x.elem.size {
			return fmt.Errorf("collectives: %s: rank %d sent %d bytes, want %d elements", x.k, p, len(b), len(dst))
		}
		decodeInto(x.elem, dst, b)
	}
	return nil
}

// fanAllgather has every rank publish its reduced block once, for the bus
// to fan out, and receives the others' straight into acc.
func (r *reducer[T]) fanAllgather() error {
	x := r.x
	o := offsets(blockCounts(len(r.acc), x.size))
	return x.fanInto(x.outgoing(mpi.AsBytes(r.block(o, r.owned(x.rank)))), func(src int) []byte {
		return rawBytes(r.block(o, r.owned(src)))
	})
}

// owned returns the block that rank owns, fully reduced, after the
// reduce-scatter.
func (r *reducer[T]) owned(rank int) int { return ownedBlock(rank, r.x.size, r.halving()) }

// ringReduceScatter leaves this rank with block rank+1 of the result. At
// each step a rank passes on the block it has just combined (its own data,
// first) and receives the left neighbour's partial block straight into acc,
// where it adds its own data to it.
func (r *reducer[T]) ringReduceScatter() error { return r.ring(ringReduceScatter, true) }

// ringAllgather passes the reduced blocks around the ring, each received
// straight into its place in acc.
func (r *reducer[T]) ringAllgather() error { return r.ring(ringAllgather, false) }

// ring runs the n-1 steps of a ring: at step i, this rank sends block send
// of acc to the right and receives block recv from the left, where step
// names them. With reduce, the first block sent is this rank's data, and
// this rank's data is combined into each block received.
func (r *reducer[T]) ring(step func(rank, n, i int) (send, recv int), reduce bool) error {
	x := r.x
	n := x.size
	o := offsets(blockCounts(len(r.acc), n))
	right, left := mod(x.rank+1, n), mod(x.rank-1, n)
	// Every step's receive is posted at once, each into its own block, so
	// that the left neighbour's data flows as soon as it is sent.
	recvs := make([]*mpi.Request, n-1)
	for i := range recvs {
		_, rb := step(x.rank, n, i)
		recvs[i] = x.c.IrecvInto(left, x.tag(phaseData), rawBytes(r.block(o, rb)))
	}
	cancel := func(from int) {
		for _, q := range recvs[from:] {
			q.Cancel()
		}
	}
	for i := 0; i < n-1; i++ {
		sb, rb := step(x.rank, n, i)
		out := r.block(o, sb)
		if reduce && i == 0 {
			out = r.data[o[sb]:o[sb+1]]
		}
		req := x.send(right, x.outgoing(mpi.AsBytes(out)))
		if err := r.landed(recvs[i], left, o, rb); err != nil {
			req.Cancel()
			cancel(i + 1)
			return err
		}
		if reduce {
			apply(x, r.op, r.block(o, rb), r.data[o[rb]:o[rb+1]])
		}
		if err := x.waitAll([]*mpi.Request{req}); err != nil {
			cancel(i + 1)
			return err
		}
	}
	return nil
}

// landed waits for req, a receive from src straight into block b of acc,
// and checks that the whole block came.
func (r *reducer[T]) landed(req *mpi.Request, src int, o []int, b int) error {
	x := r.x
	dst := r.block(o, b)
	st, err := req.Wait(x.ctx)
	if err == nil && x.marker(st.Count, len(dst)*x.elem.size) {
		return nil
	}
	if err == nil && st.Count != len(dst)*x.elem.size {
		err = fmt.Errorf("rank %d sent %d bytes for block %d, want %d elements", src, st.Count, b, len(dst))
	}
	if err != nil {
		return opError(x.k, err)
	}
	fromWire(x.elem, rawBytes(dst))
	return nil
}

// gatherBlocks brings the reduced blocks to root, each straight into its
// place in acc.
func (r *reducer[T]) gatherBlocks(root int) error {
	x := r.x
	n := x.size
	o := offsets(blockCounts(len(r.acc), n))
	if x.rank != root {
		return x.waitAll([]*mpi.Request{x.send(root, x.outgoing(mpi.AsBytes(r.block(o, r.owned(x.rank)))))})
	}
	reqs := make([]*mpi.Request, n)
	for src := range n {
		if src != root {
			reqs[src] = x.c.IrecvInto(src, x.tag(phaseData), rawBytes(r.block(o, r.owned(src))))
		}
	}
	for src, req := range reqs {
		if req == nil {
			continue
		}
		if err := r.landed(req, src, o, r.owned(src)); err != nil {
			for _, q := range reqs[src+1:] {
				if q != nil {
					q.Cancel()
				}
			}
			return err
		}
	}
	return nil
}
