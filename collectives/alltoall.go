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
// Up to 16 KiB per rank, the data goes with the call's check through rank
// 0, which sends each rank its blocks. Larger data moves after the check in
// a pairwise exchange: every rank sends one message to every other at
// once, starting with its right neighbour.
//
// Every rank returns an error wrapping ErrCounts if len(data) is not a
// multiple of Size() on some rank, ErrMismatch if the ranks pass different
// lengths or element types, ErrEncode if a rank cannot encode its data; and
// wraps the mpi errors and ctx.Err().
func Alltoall[T any](ctx context.Context, c *mpi.Comm, data []T) (out []T, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kAlltoall, elem, 0, len(data))
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	n := x.size
	var blocks [][]byte // by destination
	var offer []byte
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
		if blocks != nil && blocksSize(blocks) <= gatherInline {
			offer = appendBlocks(nil, blocks)
		}
	}
	_, mine, err := x.agree(x.collectUp(offer), func(all []byte) downPayload {
		x.st.info = 0
		rows, err := parseBlocks(all)
		if err != nil || len(rows) != n {
			return downPayload{}
		}
		matrix := make([][][]byte, n) // matrix[r][j]: rank r's block for rank j
		for r, row := range rows {
			if matrix[r], err = parseBlocks(row); row == nil || err != nil || len(matrix[r]) != n {
				return downPayload{}
			}
		}
		per := make([][]byte, n)
		col := make([][]byte, n)
		for j := range per {
			for r := range col {
				col[r] = matrix[r][j]
			}
			per[j] = appendBlocks(nil, col)
		}
		x.st.info = 1
		return downPayload{per: per}
	})
	if err != nil {
		return nil, err
	}
	var got [][]byte
	if x.st.info == 1 {
		if got, err = parseBlocks(mine); err != nil || len(got) != n {
			return nil, fmt.Errorf("collectives: Alltoall: rank %d got %d blocks of %d", x.rank, len(got), n)
		}
	} else if got, err = x.pairwise(blocks); err != nil {
		return nil, err
	}
	return decodeAll[T](x, got)
}

// pairwise is the second phase of a large Alltoall: every rank sends block
// j to rank j, all at once, and receives one block from every rank.
func (x *call) pairwise(blocks [][]byte) ([][]byte, error) {
	n := x.size
	got := make([][]byte, n)
	got[x.rank] = blocks[x.rank]
	recvs := make([]*mpi.Request, 0, n-1)
	for i := 1; i < n; i++ {
		recvs = append(recvs, x.c.Irecv(mod(x.rank-i, n), x.tag(phaseData)))
	}
	sends := make([]*mpi.Request, 0, n-1)
	for i := 1; i < n; i++ {
		dst := mod(x.rank+i, n)
		sends = append(sends, x.send(dst, blocks[dst]))
	}
	if err := x.waitAll(append(recvs, sends...)); err != nil {
		return nil, err
	}
	for i, r := range recvs {
		got[mod(x.rank-i-1, n)] = r.Data()
	}
	return got, nil
}
