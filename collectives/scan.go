package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Scan returns on rank r the element-wise combination with op of the data
// of ranks 0 to r (an inclusive prefix reduction). Every rank must pass the
// same len(data). data is not changed, and the result never shares memory
// with it. It panics if op is nil.
//
// Up to 16 KiB per rank, the data goes with the call's check to rank 0,
// which computes every prefix in rank order and sends each rank its own.
// Larger data takes ceil(log2 n) rounds after the check (Hillis and
// Steele).
//
// Every rank returns an error wrapping ErrMismatch if the ranks pass
// different lengths or element types; and wraps the mpi errors and
// ctx.Err().
func Scan[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, op Op[T]) ([]T, error) {
	return scan(ctx, c, kScan, data, op)
}

// Exscan returns on rank r > 0 the element-wise combination with op of the
// data of ranks 0 to r-1 (an exclusive prefix reduction), and nil on rank 0,
// before which there is nothing. Otherwise it is like Scan.
func Exscan[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, op Op[T]) ([]T, error) {
	return scan(ctx, c, kExscan, data, op)
}

func scan[T mpi.Number](ctx context.Context, c *mpi.Comm, k kind, data []T, op Op[T]) (out []T, err error) {
	if op == nil {
		panic(fmt.Sprintf("collectives: %s: nil Op", k))
	}
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, 0, len(data))
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	if x.posts {
		if out, done, err := postedReduce(x, 0, data, op, nil); done {
			return out, err
		}
	}
	x.markers = true
	var offer []byte
	if len(data)*elem.size <= gatherInline {
		offer = mpi.AsBytes(data)
	}
	_, mine, err := x.agree(x.collectUp(offer), func(all []byte) downPayload {
		x.st.info = 0
		blocks, err := parseBlocks(all)
		if err != nil || len(blocks) != x.size {
			return downPayload{}
		}
		per := make([][]byte, x.size)
		var acc []T
		for r, b := range blocks {
			in, err := mpi.FromBytes[T](b)
			if b == nil || err != nil || len(in) != len(data) {
				return downPayload{}
			}
			if k == kExscan && r > 0 {
				per[r] = mpi.AsBytes(clone(acc))
			}
			if r == 0 {
				acc = clone(in)
			} else if !apply(x, op, acc, in) {
				return downPayload{} // the verdict reports the panic
			}
			if k == kScan {
				per[r] = mpi.AsBytes(clone(acc))
			}
		}
		x.st.info = 1
		return downPayload{per: per}
	})
	if err != nil {
		return nil, err
	}
	if x.st.info == 1 {
		if k == kExscan && x.rank == 0 {
			return nil, nil
		}
		out, err := mpi.FromBytes[T](mine)
		if mine == nil || err != nil || len(out) != len(data) {
			return nil, fmt.Errorf("collectives: %s: rank %d got %d bytes for %d elements", x.k, x.rank, len(mine), len(data))
		}
		return out, nil
	}
	return hillisSteele(x, k, data, op)
}

// hillisSteele is the second phase of a large scan: in the round of
// distance s, rank r sends its partial result (the ranks (r-s, r]) to r+s
// and combines the one from r-s into its own.
func hillisSteele[T mpi.Number](x *call, k kind, data []T, op Op[T]) ([]T, error) {
	partial := clone(data)
	var excl []T // Exscan: the ranks before r within the window
	for _, s := range distances(x.size) {
		send, recv := scanEdge(x.rank, s, x.size)
		var req *mpi.Request
		if send {
			req = x.send(x.rank+s, x.outgoing(mpi.AsBytes(partial)))
		}
		if recv {
			p, err := x.recv(x.rank - s)
			if err != nil {
				if req != nil {
					req.Cancel()
				}
				return nil, err
			}
			next := partial
			if !x.marker(len(p), len(partial)*x.elem.size) {
				in, err := mpi.FromBytes[T](p)
				if err != nil || len(in) != len(partial) {
					return nil, fmt.Errorf("collectives: %s: rank %d sent %d bytes, want %d elements", x.k, x.rank-s, len(p), len(partial))
				}
				if k == kExscan {
					e := clone(in)
					if excl != nil {
						apply(x, op, e, excl)
					}
					excl = e
				}
				apply(x, op, in, partial) // in comes from lower ranks: in op partial
				next = in
			}
			if req != nil {
				if err := x.waitAll([]*mpi.Request{req}); err != nil {
					return nil, err
				}
				req = nil
			}
			partial = next
		}
		if req != nil {
			if err := x.waitAll([]*mpi.Request{req}); err != nil {
				return nil, err
			}
		}
	}
	if k == kExscan {
		return excl, nil
	}
	return partial, nil
}
