package collectives

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/gorun-hpc/gorun/mpi"
)

// ReduceScatterBlock combines the data of every rank element-wise with op,
// as Allreduce does, and leaves on rank i only block i of the result: data
// is cut into Size() blocks of len(data)/Size() elements. Every rank must
// pass the same len(data), a multiple of Size(). data is not changed, and
// the result never shares memory with it. It panics if op is nil.
//
// After the check, every rank sends block j of its data to rank j, all at
// once, and rank j combines the blocks it got in rank order: each rank
// sends and receives (n-1)/n of its data.
//
// Every rank returns an error wrapping ErrCounts if len(data) is not a
// multiple of Size(), ErrMismatch if the ranks pass different lengths or
// element types; and wraps the mpi errors and ctx.Err().
func ReduceScatterBlock[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, op Op[T]) ([]T, error) {
	return reduceScatter(ctx, c, kReduceScatterBlock, data, nil, op)
}

// ReduceScatter combines the data of every rank element-wise with op, as
// Allreduce does, and leaves on rank i only its block of the result: the
// counts[i] elements after the first counts[0]+...+counts[i-1]. Every rank
// must pass the same len(data) and the same counts, one per rank, none
// negative, adding up to len(data). data is not changed, and the result
// never shares memory with it. It panics if op is nil.
//
// It moves its data as ReduceScatterBlock does.
//
// Every rank returns an error wrapping ErrCounts if some rank's counts are
// not one per rank, are negative or do not add up to len(data),
// ErrMismatch if the ranks pass different counts (naming two ranks and the
// first count that differs), lengths or element types; and wraps the mpi
// errors and ctx.Err().
func ReduceScatter[T mpi.Number](ctx context.Context, c *mpi.Comm, data []T, counts []int, op Op[T]) ([]T, error) {
	return reduceScatter(ctx, c, kReduceScatter, data, counts, op)
}

func reduceScatter[T mpi.Number](ctx context.Context, c *mpi.Comm, k kind, data []T, counts []int, op Op[T]) (out []T, err error) {
	if op == nil {
		panic(fmt.Sprintf("collectives: %s: nil Op", k))
	}
	elem := infoOf[T]()
	x, err := begin(ctx, c, k, elem, 0, len(data))
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	good := true
	if k == kReduceScatterBlock {
		if len(data)%x.size != 0 {
			x.fail(codeCounts, "len(data) = %d is not a multiple of the %d ranks", len(data), x.size)
			good = false
		} else {
			counts = slices.Repeat([]int{len(data) / x.size}, x.size)
		}
	} else {
		good = x.checkVCounts("rank %d", len(data), counts)
	}
	// Every rank's counts go up with the check (as 8 bytes a count), and
	// the leader compares them: info is the lowest rank whose counts differ
	// from rank 0's, and the text saying how comes down to every rank.
	var offer []byte
	if k == kReduceScatter && good {
		for _, n := range counts {
			offer = binary.LittleEndian.AppendUint64(offer, uint64(n))
		}
	}
	common, _, err := x.agree(x.collectUp(offer), func(all []byte) downPayload {
		x.st.info = 0
		if k != kReduceScatter {
			return downPayload{}
		}
		rows, err := parseBlocks(all)
		if err != nil || len(rows) != x.size {
			return downPayload{}
		}
		for r := 1; r < x.size; r++ {
			if why := countsDiffer(rows[0], rows[r]); why != "" {
				x.st.info = int64(r)
				return downPayload{common: fmt.Appendf(nil, "collectives: %s: ranks passed different counts: %s on rank 0, %s on rank %d: %v",
					x.k, why, countsAt(rows[r], why), r, ErrMismatch)}
			}
		}
		return downPayload{}
	})
	if err != nil {
		return nil, err
	}
	if x.st.info > 0 {
		return nil, &argError{err: ErrMismatch, from: -1, text: string(common)}
	}
	o := offsets(counts)
	blocks := make([][]byte, x.size)
	for r := range blocks {
		blocks[r] = mpi.AsBytes(data[o[r]:o[r+1]])
	}
	got, err := x.pairwise(blocks)
	if err != nil {
		return nil, err
	}
	mine := counts[x.rank]
	acc := make([]T, mine)
	for r, b := range got {
		if len(b) != mine*elem.size {
			return nil, fmt.Errorf("collectives: %s: rank %d sent %d bytes, want %d elements", x.k, r, len(b), mine)
		}
		if r == 0 {
			decodeInto(elem, acc, b)
			continue
		}
		in, err := decode[T](elem, b)
		if err != nil {
			return nil, opError(x.k, err)
		}
		if mine > 0 {
			apply(x, op, acc, in)
		}
	}
	return acc, nil
}

// countsDiffer compares two ranks' counts (8 bytes a count) and returns
// "counts[i] = v", the first of a's that differs from b's, or "" if they
// are the same.
func countsDiffer(a, b []byte) string {
	for i := 0; i+8 <= len(a); i += 8 {
		if i+8 > len(b) || binary.LittleEndian.Uint64(a[i:]) != binary.LittleEndian.Uint64(b[i:]) {
			return fmt.Sprintf("counts[%d] = %d", i/8, int64(binary.LittleEndian.Uint64(a[i:])))
		}
	}
	if len(b) != len(a) {
		return fmt.Sprintf("%d counts", len(a)/8)
	}
	return ""
}

// countsAt returns what b has where countsDiffer said a differs (why).
func countsAt(b []byte, why string) string {
	var i int
	if _, err := fmt.Sscanf(why, "counts[%d]", &i); err == nil {
		if 8*i+8 <= len(b) {
			return fmt.Sprintf("counts[%d] = %d", i, int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
	}
	return fmt.Sprintf("%d counts", len(b)/8)
}
