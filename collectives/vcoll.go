package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// The v collectives: blocks of different sizes. Each checks its arguments
// in the call's first phase, like the other collectives, and moves its
// data after it, once every rank knows the call is sound.

// Alltoallv sends counts[j] elements of data to rank j, in order (the
// first counts[0] to rank 0, the next counts[1] to rank 1, ...), and
// returns what arrived, in rank order, with how many elements came from
// each rank. counts must have one entry per rank, none negative, adding up
// to len(data); the ranks' counts need not match one another (a rank
// learns what it receives from the data). data is not changed, and the
// result never shares memory with it.
//
// After the check, every rank sends one message to every other at once.
//
// Every rank returns an error wrapping ErrCounts if some rank's counts are
// not one per rank, are negative or do not add up to its len(data),
// ErrMismatch if the ranks called different collectives or passed
// different element types, ErrEncode if a rank cannot encode its data; and
// wraps the mpi errors and ctx.Err().
func Alltoallv[T any](ctx context.Context, c *mpi.Comm, data []T, counts []int) (out []T, got []int, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kAlltoallv, elem, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	var blocks [][]byte
	if x.checkVCounts("rank %d", len(data), counts) {
		blocks = encodeBlocks(x, x.rank, data, counts)
	}
	if _, _, err := x.agree(nil, nil); err != nil {
		return nil, nil, err
	}
	recv, err := x.pairwise(blocks)
	if err != nil {
		return nil, nil, err
	}
	return decodeEach[T](x, recv)
}

// Gatherv returns, on root, the concatenation of every rank's data in rank
// order and how many elements came from each rank; nil and nil on the
// other ranks. The ranks' lengths may differ. Every rank must pass the
// same root. The result never shares memory with data.
//
// Contributions of up to 16 KiB go with the call's check, through rank 0
// to root; larger ones go straight to root after the check.
//
// Every rank returns an error wrapping mpi.ErrRank if root is out of range
// on any rank, ErrMismatch if the ranks pass different roots or element
// types, ErrEncode if a rank cannot encode its data; and wraps the mpi
// errors and ctx.Err().
func Gatherv[T any](ctx context.Context, c *mpi.Comm, root int, data []T) (out []T, counts []int, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kGatherv, elem, root, 0)
	if err != nil {
		return nil, nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	x.checkRoot(root)
	enc, offer := encodeOffer(x, data)
	_, mine, err := x.agree(x.collectUp(offer), func(all []byte) downPayload {
		per := make([][]byte, x.size)
		per[root] = all
		return downPayload{per: per}
	})
	if err != nil {
		return nil, nil, err
	}
	if x.rank != root {
		if offer == nil {
			if err := x.waitAll([]*mpi.Request{x.send(root, enc)}); err != nil {
				return nil, nil, err
			}
		}
		return nil, nil, nil
	}
	blocks, err := parseBlocks(mine)
	if err != nil || len(blocks) != x.size {
		return nil, nil, fmt.Errorf("collectives: Gatherv: root got %d contributions of %d", len(blocks), x.size)
	}
	blocks[root] = enc
	if err := x.recvMissing(blocks); err != nil {
		return nil, nil, err
	}
	return decodeEach[T](x, blocks)
}

// Allgatherv returns on every rank the concatenation of every rank's data
// in rank order, and how many elements came from each rank. The ranks'
// lengths may differ. The result never shares memory with data.
//
// After the check, every rank publishes its data once for the bus to fan
// out (on a communicator that spans the world), or a Bruck allgather runs:
// ceil(log2 n) rounds in which every rank sends and receives one message.
//
// Every rank returns an error wrapping ErrMismatch if the ranks called
// different collectives or passed different element types, ErrEncode if a
// rank cannot encode its data; and wraps the mpi errors and ctx.Err().
func Allgatherv[T any](ctx context.Context, c *mpi.Comm, data []T) (out []T, counts []int, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kAllgatherv, elem, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	enc, err := encode(elem, data)
	if err != nil {
		x.fail(codeEncode, "%v", err)
	}
	if _, _, err := x.agree(nil, nil); err != nil {
		return nil, nil, err
	}
	var blocks [][]byte
	if x.c.Multicast() {
		blocks, err = x.fanAll(enc)
	} else {
		blocks, err = x.bruck(enc)
	}
	if err != nil {
		return nil, nil, err
	}
	return decodeEach[T](x, blocks)
}

// checkVCounts records counts that are not one per rank, are negative or
// do not add up to n, the length of this rank's data; who names the rank
// in the message (a format with one %d). It reports whether they are good.
func (x *call) checkVCounts(who string, n int, counts []int) bool {
	name := fmt.Sprintf(who, x.rank)
	if len(counts) != x.size {
		x.fail(codeCounts, "%s has %d counts for %d ranks", name, len(counts), x.size)
		return false
	}
	sum := 0
	for i, c := range counts {
		if c < 0 {
			x.fail(codeCounts, "%s: counts[%d] = %d is negative", name, i, c)
			return false
		}
		sum += c
	}
	if sum != n {
		x.fail(codeCounts, "%s: counts add up to %d, but its data has %d elements", name, sum, n)
		return false
	}
	return true
}

// decodeEach decodes blocks, one per rank, and returns their concatenation
// and the number of elements in each.
func decodeEach[T any](x *call, blocks [][]byte) ([]T, []int, error) {
	counts := make([]int, len(blocks))
	parts := make([][]T, len(blocks))
	total := 0
	for r, b := range blocks {
		xs, err := decode[T](x.elem, b)
		if err != nil {
			return nil, nil, opError(x.k, fmt.Errorf("%w: from rank %d: %v", ErrEncode, r, err))
		}
		parts[r], counts[r] = xs, len(xs)
		total += len(xs)
	}
	out := make([]T, 0, total)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, counts, nil
}
