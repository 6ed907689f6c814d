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
// Small data (up to 64 KiB in all) moves down a binomial tree within the
// rounds of a dissemination that also checks the call; larger data goes
// from the root straight to each rank after that check.
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

func scatter[T any](ctx context.Context, c *mpi.Comm, k kind, root int, data []T, counts []int) ([]T, error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, root, 0)
	if err != nil {
		return nil, err
	}
	d := -1
	if x.checkRoot(root) {
		d = offset(x.rank, root, x.size)
	}
	// blocks[i] is the wire form of the block of the rank at offset d+i,
	// for the offsets of this rank's subtree, once known.
	var blocks [][]byte
	if d == 0 {
		if k == kScatter {
			counts = blockCounts(len(data), x.size)
		} else {
			x.checkCounts(len(data), counts)
		}
		if x.local == nil {
			blocks = encodeBlocks(x, root, data, counts)
		}
		if blocks != nil {
			x.st.info = 0
			if blocksSize(blocks) <= scatterInline {
				x.st.info = 1
			}
		}
	}
	inline := blocks != nil && x.st.info == 1
	err = x.disseminate(true, 1, func(s int) ([]byte, bool) {
		if send, _ := downEdge(d, s, x.size); d < 0 || !inline || !send {
			return nil, false
		}
		return appendBlocks(nil, blocks[s:min(2*s, x.size-d)]), true
	}, func(s int, p []byte) error {
		b, err := parseBlocks(p)
		if err != nil {
			return opError(x.k, err)
		}
		lo, hi := subtree(d, x.size)
		if _, recv := downEdge(d, s, x.size); d > 0 && recv && blocks == nil && len(b) == hi-lo {
			blocks, inline = b, true
		} // else a mismatched call; the verdict will say so
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := x.verdict(); err != nil {
		return nil, err
	}
	var mine []byte
	switch {
	case x.st.info == 1 && len(blocks) > 0:
		mine = blocks[0]
	case x.st.info == 1:
		return nil, fmt.Errorf("collectives: %s: no data reached rank %d", x.k, x.rank)
	case d == 0: // large: straight from the root
		reqs := make([]*mpi.Request, 0, x.size-1)
		for off := 1; off < x.size; off++ {
			reqs = append(reqs, x.send((off+root)%x.size, blocks[off]))
		}
		if err := x.waitAll(reqs); err != nil {
			return nil, err
		}
		mine = blocks[0]
	default:
		if mine, err = x.recv(root); err != nil {
			return nil, err
		}
	}
	out, err := decode[T](elem, mine)
	if err != nil {
		return nil, opError(x.k, fmt.Errorf("%w: %v", ErrEncode, err))
	}
	return out, nil
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

// encodeBlocks returns the wire form of each rank's block of data, ordered
// by offset from root: for numbers, views of data's memory. It returns nil
// after recording an encoding error.
func encodeBlocks[T any](x *call, root int, data []T, counts []int) [][]byte {
	o := offsets(counts)
	blocks := make([][]byte, x.size)
	for r := range x.size {
		enc, err := encode(x.elem, data[o[r]:o[r+1]])
		if err != nil {
			x.fail(codeEncode, "root %d: %v", root, err)
			return nil
		}
		blocks[offset(r, root, x.size)] = enc
	}
	return blocks
}
