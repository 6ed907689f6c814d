package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Alltoall sends block j of data to rank j and returns the blocks received,
// in rank order: data is cut into Size() blocks of len(data)/Size()
// elements, and on rank i the result's block j is block i of rank j's data.
// Every rank must pass the same len(data), a multiple of Size(). data is not
// changed, and the result never shares memory with it.
//
// Every rank sends one message to every other at once (a pairwise
// exchange in a single round, each rank starting with its right
// neighbour), and every message also carries the checks: every rank returns
// an error wrapping ErrCounts if len(data) is not a multiple of Size() on
// some rank, ErrMismatch if the ranks pass different lengths or element
// types, ErrEncode if a rank cannot encode its data; and wraps the mpi
// errors and ctx.Err().
func Alltoall[T any](ctx context.Context, c *mpi.Comm, data []T) ([]T, error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kAlltoall, elem, 0, len(data))
	if err != nil {
		return nil, err
	}
	n := x.size
	var blocks [][]byte // by destination
	if len(data)%n != 0 {
		x.fail(codeCounts, "len(data) = %d is not a multiple of the %d ranks", len(data), n)
	} else {
		blocks = make([][]byte, n)
		k := len(data) / n
		for j := range blocks {
			if blocks[j], err = encode(elem, data[j*k:(j+1)*k]); err != nil {
				x.fail(codeEncode, "%v", err)
				blocks = nil
				break
			}
		}
	}
	tag := x.tag(phaseAgree)
	recvs := make([]*mpi.Request, n)
	for i := 1; i < n; i++ {
		src := mod(x.rank-i, n)
		recvs[src] = x.c.Irecv(src, tag)
	}
	// The status in every message is this rank's own: each rank hears
	// from every other directly.
	sends := make([]*mpi.Request, 0, n-1)
	for i := 1; i < n; i++ {
		dst := mod(x.rank+i, n)
		var msg []byte
		if blocks != nil {
			msg = x.message(blocks[dst], true)
		} else {
			msg = x.message(nil, false)
		}
		sends = append(sends, x.c.Isend(dst, tag, msg))
	}
	got := make([][]byte, n)
	for i := 1; i < n; i++ {
		src := mod(x.rank-i, n)
		req := recvs[src]
		if _, err := req.Wait(x.ctx); err != nil {
			for _, r := range recvs {
				if r != nil {
					r.Cancel()
				}
			}
			for _, r := range sends {
				r.Cancel()
			}
			return nil, opError(x.k, err)
		}
		if got[src], err = x.absorb(src, req.Data()); err != nil {
			return nil, err
		}
	}
	if err := x.waitAll(sends); err != nil {
		return nil, err
	}
	if err := x.verdict(); err != nil {
		return nil, err
	}
	got[x.rank] = blocks[x.rank]
	for j, b := range got {
		if b == nil {
			return nil, fmt.Errorf("collectives: Alltoall: no data from rank %d", j)
		}
	}
	return decodeAll[T](x, got)
}
