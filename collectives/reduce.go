package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// reduceSmall is the largest Reduce or Allreduce (in bytes per rank) done by
// recursive doubling, with the data in the messages that check the call;
// larger ones check first, then run a ring reduce-scatter and a ring
// allgather (or a gather to the root), which move 2(n-1)/n of the data per
// rank instead of log2(n) times all of it.
const reduceSmall = 256 << 10

// Reduce combines the data of every rank element-wise with op and returns
// the result on root, nil on the other ranks. Every rank must pass the same
// root and the same len(data). data is not changed, and the result never
// shares memory with it. It panics if op is nil.
//
// Up to 256 KiB per rank, it is a recursive doubling (log2 n rounds, two
// more when n is not a power of two) that also checks the call; above that,
// a check then a ring reduce-scatter and a gather of the reduced blocks to
// the root.
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
// Up to 256 KiB per rank, it is a recursive doubling (log2 n rounds, two
// more when n is not a power of two) that also checks the call; above that,
// a check then a ring reduce-scatter and a ring allgather (Patarasuk and
// Yuan), which move 2(n-1)/n of the data per rank.
//
// Every rank returns an error wrapping ErrMismatch if the ranks pass
// different lengths or element types (naming two ranks and their lengths);
// and wraps the mpi errors and ctx.Err().
func Allreduce[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, op Op[T]) ([]T, error) {
	return reduce(ctx, c, kAllreduce, 0, data, op)
}

func reduce[T mpi.Number](ctx context.Context, c *mpi.Comm, k kind, root int, data []T, op Op[T]) ([]T, error) {
	if op == nil {
		panic(fmt.Sprintf("collectives: %s: nil Op", k))
	}
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, root, len(data))
	if err != nil {
		return nil, err
	}
	if k == kReduce {
		x.checkRoot(root)
	}
	r := &reducer[T]{x: x, op: op, acc: clone(data), small: len(data)*elem.size <= reduceSmall}
	if err := r.doubling(); err != nil {
		return nil, err
	}
	if err := x.verdict(); err != nil {
		return nil, err
	}
	if !r.small {
		if err := r.ringReduceScatter(); err != nil {
			return nil, err
		}
		if k == kAllreduce {
			err = r.ringAllgather()
		} else {
			err = r.gatherBlocks(root)
		}
		if err != nil {
			return nil, err
		}
	}
	if k == kReduce && x.rank != root {
		return nil, nil
	}
	return r.acc, nil
}

// reducer is the state of one rank's Reduce or Allreduce.
type reducer[T mpi.Number] struct {
	x     *call
	op    Op[T]
	acc   []T  // this rank's partial result
	small bool // the data travels in the recursive doubling
	ok    bool // every contribution combined so far had the right length
}

// combine merges a contribution received as p into acc, keeping the order
// of ranks: lower is set when p comes from lower ranks than acc. A
// contribution of the wrong length is skipped (the verdict will fail).
func (r *reducer[T]) combine(p []byte, lower bool) {
	in, err := mpi.FromBytes[T](p) // p is ours: no copy when aligned
	if err != nil || len(in) != len(r.acc) {
		return
	}
	if lower {
		r.op(in, r.acc)
		r.acc = in
	} else {
		r.op(r.acc, in)
	}
}

// payload returns what goes with a doubling message.
func (r *reducer[T]) payload() ([]byte, bool) {
	if !r.small {
		return nil, false
	}
	return mpi.AsBytes(r.acc), true
}

// doubling is the first phase: a recursive doubling of the status, and of
// the data when it is small.
func (r *reducer[T]) doubling() error {
	x := r.x
	pl := recursiveDoubling(x.rank, x.size)
	tag := x.tag(phaseAgree)
	if pl.extra {
		p, has := r.payload()
		if err := x.waitAll([]*mpi.Request{x.c.Isend(pl.fold, tag, x.message(p, has))}); err != nil {
			return err
		}
		b, _, err := x.c.Recv(x.ctx, pl.fold, tag)
		if err != nil {
			return opError(x.k, err)
		}
		res, err := x.absorb(pl.fold, b)
		if err != nil {
			return err
		}
		if res != nil && r.small {
			if in, err := mpi.FromBytes[T](res); err == nil && len(in) == len(r.acc) {
				r.acc = in
			}
		}
		return nil
	}
	if pl.fold >= 0 {
		b, _, err := x.c.Recv(x.ctx, pl.fold, tag)
		if err != nil {
			return opError(x.k, err)
		}
		p, err := x.absorb(pl.fold, b)
		if err != nil {
			return err
		}
		if p != nil && r.small {
			r.combine(p, true)
		}
	}
	for _, partner := range pl.partners {
		p, has := r.payload()
		got, err := x.round(partner, partner, p, has)
		if err != nil {
			return err
		}
		if got != nil && r.small {
			r.combine(got, partner < x.rank)
		}
	}
	if pl.fold >= 0 {
		p, has := r.payload()
		if err := x.waitAll([]*mpi.Request{x.c.Isend(pl.fold, tag, x.message(p, has))}); err != nil {
			return err
		}
	}
	return nil
}

// block returns block i of acc's n blocks.
func (r *reducer[T]) block(o []int, i int) []T { return r.acc[o[i]:o[i+1]] }

// ringReduceScatter leaves this rank with block rank+1 of the result.
func (r *reducer[T]) ringReduceScatter() error {
	x := r.x
	n := x.size
	o := offsets(blockCounts(len(r.acc), n))
	right, left := mod(x.rank+1, n), mod(x.rank-1, n)
	for i := 0; i < n-1; i++ {
		sb, rb := ringReduceScatter(x.rank, n, i)
		req := x.send(right, mpi.AsBytes(r.block(o, sb)))
		p, err := x.recv(left)
		if err != nil {
			req.Cancel()
			return err
		}
		in, err := mpi.FromBytes[T](p)
		dst := r.block(o, rb)
		if err != nil || len(in) != len(dst) {
			req.Cancel()
			return fmt.Errorf("collectives: %s: rank %d sent %d bytes for block %d, want %d elements", x.k, left, len(p), rb, len(dst))
		}
		r.op(dst, in)
		if err := x.waitAll([]*mpi.Request{req}); err != nil {
			return err
		}
	}
	return nil
}

// ringAllgather passes the reduced blocks around the ring.
func (r *reducer[T]) ringAllgather() error {
	x := r.x
	n := x.size
	o := offsets(blockCounts(len(r.acc), n))
	right, left := mod(x.rank+1, n), mod(x.rank-1, n)
	for i := 0; i < n-1; i++ {
		sb, rb := ringAllgather(x.rank, n, i)
		req := x.send(right, mpi.AsBytes(r.block(o, sb)))
		p, err := x.recv(left)
		if err != nil {
			req.Cancel()
			return err
		}
		dst := r.block(o, rb)
		if len(p) != len(dst)*x.elem.size {
			req.Cancel()
			return fmt.Errorf("collectives: %s: rank %d sent %d bytes for block %d, want %d elements", x.k, left, len(p), rb, len(dst))
		}
		decodeInto(x.elem, dst, p)
		if err := x.waitAll([]*mpi.Request{req}); err != nil {
			return err
		}
	}
	return nil
}

// gatherBlocks brings the reduced blocks to root.
func (r *reducer[T]) gatherBlocks(root int) error {
	x := r.x
	n := x.size
	o := offsets(blockCounts(len(r.acc), n))
	if x.rank != root {
		return x.waitAll([]*mpi.Request{x.send(root, mpi.AsBytes(r.block(o, mod(x.rank+1, n))))})
	}
	reqs := make([]*mpi.Request, n)
	for src := range n {
		if src != root {
			reqs[src] = x.c.Irecv(src, x.tag(phaseData))
		}
	}
	for src, req := range reqs {
		if req == nil {
			continue
		}
		if _, err := req.Wait(x.ctx); err != nil {
			for _, q := range reqs[src:] {
				if q != nil {
					q.Cancel()
				}
			}
			return opError(x.k, err)
		}
		dst := r.block(o, mod(src+1, n))
		if p := req.Data(); len(p) == len(dst)*x.elem.size {
			decodeInto(x.elem, dst, p)
		} else {
			return fmt.Errorf("collectives: %s: rank %d sent %d bytes for block %d, want %d elements", x.k, src, len(p), mod(src+1, n), len(dst))
		}
	}
	return nil
}
