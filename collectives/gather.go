package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Gather returns, on root, the concatenation of every rank's data in rank
// order, and nil on the other ranks. The ranks' lengths may differ. Every
// rank must pass the same root. The result never shares memory with data.
//
// Contributions of up to 16 KiB move up a binomial tree within the rounds
// of a dissemination that also checks the call (ceil(log2 n) rounds);
// larger ones go straight to the root after that check.
//
// Every rank returns an error wrapping mpi.ErrRank if root is out of range
// on any rank, ErrMismatch if the ranks pass different roots or element
// types, ErrEncode if a rank cannot encode its data; and wraps the mpi errors
// and ctx.Err().
func Gather[T any](ctx context.Context, c *mpi.Comm, root int, data []T) ([]T, error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kGather, elem, root, 0)
	if err != nil {
		return nil, err
	}
	d := -1
	if x.checkRoot(root) {
		d = offset(x.rank, root, x.size)
	}
	enc, err := encode(elem, data)
	if err != nil {
		x.fail(codeEncode, "%v", err)
	}
	// blocks[i] is the wire form of the data of the rank at offset d+i, for
	// the part of this rank's subtree heard from so far; nil for data that
	// goes straight to the root.
	blocks := [][]byte{enc}
	direct := len(enc) > gatherInline
	if direct {
		blocks[0] = nil
	}
	ok := x.local == nil
	err = x.disseminate(false, -1, func(s int) ([]byte, bool) {
		if send, _ := upEdge(d, s, x.size); d < 0 || !ok || !send {
			return nil, false
		}
		return appendBlocks(nil, blocks), true
	}, func(s int, p []byte) error {
		if _, recv := upEdge(d, s, x.size); !recv || len(blocks) != s {
			ok = false // a mismatched call; the verdict will say so
			return nil
		}
		b, err := parseBlocks(p)
		if err != nil {
			return opError(x.k, err)
		}
		blocks = append(blocks, b...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := x.verdict(); err != nil {
		return nil, err
	}
	if d != 0 {
		if direct {
			if err := x.waitAll([]*mpi.Request{x.send(root, enc)}); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	if len(blocks) != x.size {
		return nil, fmt.Errorf("collectives: Gather: root heard from %d ranks of %d", len(blocks), x.size)
	}
	var reqs []*mpi.Request
	var waits []int
	for off, b := range blocks {
		if b == nil && off != 0 {
			reqs = append(reqs, x.c.Irecv((off+root)%x.size, x.tag(phaseData)))
			waits = append(waits, off)
		}
	}
	blocks[0] = enc
	if err := x.waitAll(reqs); err != nil {
		return nil, err
	}
	for i, off := range waits {
		blocks[off] = reqs[i].Data()
	}
	inRankOrder := make([][]byte, x.size)
	for off, b := range blocks {
		inRankOrder[(off+root)%x.size] = b
	}
	return decodeAll[T](x, inRankOrder)
}

// Allgather returns on every rank the concatenation of every rank's data in
// rank order. The ranks' lengths may differ. The result never shares memory
// with data.
//
// It is a Bruck allgather, ceil(log2 n) rounds in which every rank sends
// and receives one message, that also checks the call: every rank returns
// an error wrapping ErrMismatch if the ranks pass different element types,
// ErrEncode if a rank cannot encode its data; and wraps the mpi errors and
// ctx.Err().
func Allgather[T any](ctx context.Context, c *mpi.Comm, data []T) ([]T, error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kAllgather, elem, 0, 0)
	if err != nil {
		return nil, err
	}
	enc, err := encode(elem, data)
	if err != nil {
		x.fail(codeEncode, "%v", err)
	}
	// have[i] is the data of rank+i.
	have := [][]byte{enc}
	ok := x.local == nil
	for _, s := range distances(x.size, false) {
		k := bruckCount(s, x.size)
		var payload []byte
		if ok {
			payload = appendBlocks(nil, have[:k])
		}
		p, err := x.round(mod(x.rank-s, x.size), mod(x.rank+s, x.size), payload, ok)
		if err != nil {
			return nil, err
		}
		if p == nil {
			ok = false
			continue
		}
		b, err := parseBlocks(p)
		if err != nil {
			return nil, opError(x.k, err)
		}
		if len(b) != k {
			ok = false
			continue
		}
		have = append(have, b...)
	}
	if err := x.verdict(); err != nil {
		return nil, err
	}
	if len(have) != x.size {
		return nil, fmt.Errorf("collectives: Allgather: rank %d heard from %d ranks of %d", x.rank, len(have), x.size)
	}
	inRankOrder := make([][]byte, x.size)
	for i, b := range have {
		inRankOrder[(x.rank+i)%x.size] = b
	}
	return decodeAll[T](x, inRankOrder)
}

// decodeAll decodes blocks and concatenates them.
func decodeAll[T any](x *call, blocks [][]byte) ([]T, error) {
	elem := x.elem
	if !elem.raw {
		var out []T
		for _, b := range blocks {
			xs, err := decode[T](elem, b)
			if err != nil {
				return nil, opError(x.k, fmt.Errorf("%w: %v", ErrEncode, err))
			}
			out = append(out, xs...)
		}
		return clone(out), nil
	}
	n := 0
	for _, b := range blocks {
		if len(b)%elem.size != 0 {
			return nil, opError(x.k, fmt.Errorf("%w: %d bytes are not a whole number of %s", ErrEncode, len(b), elem.name))
		}
		n += len(b) / elem.size
	}
	out := make([]T, n)
	at := 0
	for _, b := range blocks {
		decodeInto(elem, out[at:], b)
		at += len(b) / elem.size
	}
	return out, nil
}
