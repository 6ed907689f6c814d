package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// ReduceFunc combines the data of every rank with op and returns the
// result on root, nil on the other ranks: the reduction for element types
// that are not numbers, or whose elements an Op would split (Loc pairs, a
// struct of several fields). op(acc, in) must set acc[i] to the combination
// of acc[i] and in[i] for every i, be associative and commutative, and not
// keep acc or in. The reduction never cuts data: op always gets whole
// elements, and whole vectors (len(data) elements each). Every rank must
// pass the same root and the same len(data). data is not changed, and the
// result never shares memory with it. It panics if op is nil.
//
// Fixed-size element types (numbers, and structs and arrays of them, such
// as Loc[float64]) travel as raw memory; others through encoding/gob.
//
// After the check, the vectors are combined up a binomial tree rooted at
// root: ceil(log2 n) steps, each rank sending its partial result once.
//
// Every rank returns an error wrapping ErrMismatch if the ranks pass
// different roots, lengths or element types, mpi.ErrRank if root is out of
// range on any rank, ErrEncode if a rank cannot encode its data,
// ErrOpPanicked on the ranks above one whose op panicked (which panics
// again itself); and wraps the mpi errors and ctx.Err().
func ReduceFunc[T any](ctx context.Context, c *mpi.Comm, root int, data []T, op func(acc, in []T)) ([]T, error) {
	return reduceFunc(ctx, c, kReduceFunc, root, data, op)
}

// AllreduceFunc is ReduceFunc with the result on every rank, the same to
// the last bit everywhere: it is computed by rank 0's tree and broadcast
// down the same tree.
func AllreduceFunc[T any](ctx context.Context, c *mpi.Comm, data []T, op func(acc, in []T)) ([]T, error) {
	return reduceFunc(ctx, c, kAllreduceFunc, 0, data, op)
}

func reduceFunc[T any](ctx context.Context, c *mpi.Comm, k kind, root int, data []T, op func(acc, in []T)) (out []T, err error) {
	if op == nil {
		panic(fmt.Sprintf("collectives: %s: nil op", k))
	}
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, root, len(data))
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	if k == kReduceFunc {
		x.checkRoot(root)
	}
	if _, err := encode(elem, data[:min(len(data), 1)]); err != nil {
		x.fail(codeEncode, "%v", err)
	}
	if _, _, err := x.agree(nil, nil); err != nil {
		return nil, err
	}
	x.markers = len(data) > 0
	n := x.size
	rel := mod(x.rank-root, n)
	acc := clone(data)
	// Up: at step mask, a rank with that bit set sends its partial result
	// (its own and its subtree's, in rank order) to rel-mask and is done;
	// the others take in rel+mask's.
	mask := 1
	for ; mask < n; mask <<= 1 {
		if rel&mask != 0 {
			if err := sendVec(x, mod(rel-mask+root, n), acc); err != nil {
				return nil, err
			}
			break
		}
		if rel+mask < n {
			src := mod(rel+mask+root, n)
			in, err := recvVec(x, src, len(data), acc)
			if err != nil {
				return nil, err
			}
			if in != nil {
				applyFunc(x, op, acc, in)
			}
		}
	}
	if k == kReduceFunc {
		if x.rank != root {
			return nil, nil
		}
		return acc, nil
	}
	// Down, for AllreduceFunc: rank 0's result goes back down the same
	// tree; a rank gets it from the parent it sent to, and passes it on to
	// the children it heard from, largest subtree first.
	if rel != 0 {
		in, err := recvVec(x, mod(rel-mask+root, n), len(data), acc)
		if err != nil {
			return nil, err
		}
		if in != nil {
			acc = in
		}
	}
	var sends []*mpi.Request
	for mask >>= 1; mask > 0; mask >>= 1 {
		if rel+mask < n {
			b, err := encode(elem, acc)
			if err != nil {
				return nil, opError(x.k, fmt.Errorf("%w: %v", ErrEncode, err))
			}
			sends = append(sends, x.send(mod(rel+mask+root, n), x.outgoing(b)))
		}
	}
	if err := x.waitAll(sends); err != nil {
		return nil, err
	}
	return acc, nil
}

// sendVec sends a whole vector to dst in the data phase, or the failure
// marker once the call has failed.
func sendVec[T any](x *call, dst int, v []T) error {
	var b []byte
	if !x.failed {
		var err error
		if b, err = encode(x.elem, v); err != nil {
			return opError(x.k, fmt.Errorf("%w: %v", ErrEncode, err))
		}
	}
	return x.waitAll([]*mpi.Request{x.send(dst, b)})
}

// recvVec receives a whole vector of n elements from src; it returns nil
// if src sent the failure marker (the call has then failed). like only
// gives the element type.
func recvVec[T any](x *call, src, n int, like []T) ([]T, error) {
	b, err := x.recv(src)
	if err != nil {
		return nil, err
	}
	want := 1
	if x.elem.raw {
		want = n * x.elem.size
	}
	if x.marker(len(b), want) {
		return nil, nil
	}
	in, err := decode[T](x.elem, b)
	if err != nil {
		return nil, opError(x.k, fmt.Errorf("%w: from rank %d: %v", ErrEncode, src, err))
	}
	if len(in) != n {
		return nil, fmt.Errorf("collectives: %s: rank %d sent %d elements, want %d", x.k, src, len(in), n)
	}
	return in, nil
}

// applyFunc is apply for a ReduceFunc's op.
func applyFunc[T any](x *call, op func(acc, in []T), acc, in []T) (ok bool) {
	if x.failed {
		return false
	}
	defer func() {
		if !ok {
			x.panicked(recover())
		}
	}()
	op(acc, in)
	return true
}
