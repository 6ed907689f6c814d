package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Scatter cuts root's data into Size() contiguous blocks, whose lengths
// differ by at most one with the longer blocks first (10 elements over 4
// ranks: 3, 3, 2, 2), and returns block i on rank i. Only root's data is
// read; the others may pass nil. Every rank must pass the same root. The
// result never shares memory with data.
//
// Where every rank of c is on one host's shared memory and the elements
// are numbers, no message moves: root's data, where it is less than 4144
// bytes, goes in root's slot there, and each rank copies its block out of
// it; larger data, root lends (where the ranks may read each other's
// memory: mpi.WithSingleCopy, the default), and each rank copies its
// block straight out of root's memory, root returning once all have.
// Elsewhere, up to 60 KiB in all, the blocks go with the call's check,
// from root through rank 0 to each rank (two hops); larger data goes from
// the root straight to each rank after the check.
//
// Every rank returns an error wrapping mpi.ErrRank if root is out of range
// on any rank, ErrMismatch if the ranks pass different roots or element
// types, ErrEncode if root cannot encode data; and wraps the mpi errors and
// ctx.Err().
func Scatter[T any](ctx context.Context, c *mpi.Comm, root int, data []T) ([]T, error) {
	return scatter(ctx, c, kScatter, root, data, nil)
}

// Scatterv is Scatter with the block lengths given: rank i gets counts[i]
// elements, in rank order. Only root's data and counts are read; the others
// may pass nil for both. Besides Scatter's errors, every rank returns an
// error wrapping ErrCounts if root's counts do not have one entry per rank,
// have a negative entry, or do not add up to len(data).
func Scatterv[T any](ctx context.Context, c *mpi.Comm, root int, data []T, counts []int) ([]T, error) {
	return scatter(ctx, c, kScatterv, root, data, counts)
}

func scatter[T any](ctx context.Context, c *mpi.Comm, k kind, root int, data []T, counts []int) (out []T, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, root, 0)
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	if x.posts {
		if out, done, err := postedScatter(x, root, data); done {
			return out, err
		}
	}
	var blocks [][]byte // on root: the wire form of each rank's block
	var offer []byte    // on root: the blocks, if they go with the check
	if x.checkRoot(root) && x.rank == root {
		switch k {
		case kScatter:
			counts = blockCounts(len(data), x.size)
		case kScatterValues:
			counts = make([]int, x.size)
			for i := range counts {
				counts[i] = 1
			}
			if len(data) != x.size {
				x.fail(codeCounts, "root %d has %d values for %d ranks, want one per rank", root, len(data), x.size)
			}
		default:
			x.checkCounts(len(data), counts)
		}
		if x.local == nil {
			blocks = encodeBlocks(x, root, data, counts)
		}
		if blocks != nil {
			x.st.info = 0
			if blocksSize(blocks) <= scatterInline {
				x.st.info = 1
				offer = appendBlocks(nil, blocks)
			}
		}
	}
	_, mine, err := x.agree(func(kids [][]byte) []byte {
		return firstOf(offer, kids)
	}, func(all []byte) downPayload {
		if x.st.info != 1 {
			return downPayload{}
		}
		per, err := parseBlocks(all)
		if err != nil || len(per) != x.size {
			return downPayload{}
		}
		return downPayload{per: per}
	})
	if err != nil {
		return nil, err
	}
	switch {
	case x.st.info == 1:
		if x.rank == root {
			mine = blocks[root]
		}
		if mine == nil {
			return nil, fmt.Errorf("collectives: %s: no data reached rank %d", x.k, x.rank)
		}
	case x.rank == root: // large: straight from the root
		reqs := make([]*mpi.Request, 0, x.size-1)
		for r, b := range blocks {
			if r != root {
				reqs = append(reqs, x.send(r, b))
			}
		}
		if err := x.waitAll(reqs); err != nil {
			return nil, err
		}
		mine = blocks[root]
	default:
		if mine, err = x.recv(root); err != nil {
			return nil, err
		}
	}
	res, err := decode[T](elem, mine)
	if err != nil {
		return nil, opError(x.k, fmt.Errorf("%w: %v", ErrEncode, err))
	}
	return res, nil
}

// checkCounts records bad Scatterv counts on the root, which has n
// elements.
func (x *call) checkCounts(n int, counts []int) {
	if len(counts) != x.size {
		x.fail(codeCounts, "root has %d counts for %d ranks", len(counts), x.size)
		return
	}
	sum := 0
	for i, c := range counts {
		if c < 0 {
			x.fail(codeCounts, "counts[%d] = %d is negative", i, c)
			return
		}
		sum += c
	}
	if sum != n {
		x.fail(codeCounts, "counts add up to %d, but the root's data has %d elements", sum, n)
	}
}

// encodeBlocks returns the wire form of each rank's block of data, in rank
// order: for numbers, views of data's memory. It returns nil after
// recording an encoding error.
func encodeBlocks[T any](x *call, root int, data []T, counts []int) [][]byte {
	o := offsets(counts)
	blocks := make([][]byte, x.size)
	for r := range x.size {
		enc, err := encode(x.elem, data[o[r]:o[r+1]])
		if err != nil {
			x.fail(codeEncode, "root %d: %v", root, err)
			return nil
		}
		blocks[r] = enc
	}
	return blocks
}
