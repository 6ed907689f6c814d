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
// Where every rank of c is on one host's shared memory, no message moves:
// a rank whose data encodes to less than 4144 bytes (4 KiB and a little
// more) puts it in its slot there; one with more lends it (where the ranks
// may read each other's memory: mpi.WithSingleCopy, the default), and root
// copies it straight out of that rank's memory, which returns once root
// has. Elsewhere, contributions of up to 16 KiB go with the call's check,
// through rank 0 to root; larger ones go straight to root after the check.
//
// Every rank returns an error wrapping mpi.ErrRank if root is out of range
// on any rank, ErrMismatch if the ranks pass different roots or element
// types, ErrEncode if a rank cannot encode its data; and wraps the mpi errors
// and ctx.Err().
func Gather[T any](ctx context.Context, c *mpi.Comm, root int, data []T) (out []T, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kGather, elem, root, 0)
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	if x.posts {
		if out, done, err := postedGather(x, root, data); done {
			return out, err
		}
	}
	x.checkRoot(root)
	enc, offer := encodeOffer(x, data)
	_, mine, err := x.agree(x.collectUp(offer), func(all []byte) downPayload {
		per := make([][]byte, x.size)
		per[root] = all
		return downPayload{per: per}
	})
	if err != nil {
		return nil, err
	}
	if x.rank != root {
		if offer == nil { // too large to go with the check
			if err := x.waitAll([]*mpi.Request{x.send(root, enc)}); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	blocks, err := parseBlocks(mine)
	if err != nil || len(blocks) != x.size {
		return nil, fmt.Errorf("collectives: Gather: root got %d contributions of %d", len(blocks), x.size)
	}
	blocks[root] = enc
	if err := x.recvMissing(blocks); err != nil {
		return nil, err
	}
	return decodeAll[T](x, blocks)
}

// Allgather returns on every rank the concatenation of every rank's data in
// rank order. The ranks' lengths may differ. The result never shares memory
// with data.
//
// Where every rank of c is on one host's shared memory, no message moves:
// a rank whose data encodes to less than 4144 bytes (4 KiB and a little
// more) puts it in its slot there, and every rank reads everyone's once
// all have arrived; one with more lends it (where the ranks may read each
// other's memory: mpi.WithSingleCopy, the default), and every rank copies
// it straight out of that rank's memory, which returns once all have.
// Elsewhere, when every rank's data is at most 16 KiB and all of it at
// most 256 KiB, it goes with the call's check, through rank 0 to every
// rank. Otherwise, after the check, every rank publishes its data once
// for the bus to fan out (on a communicator that spans the world), or a
// Bruck allgather runs: ceil(log2 n) rounds in which every rank sends and
// receives one message.
//
// Every rank returns an error wrapping ErrMismatch if the ranks pass
// different element types, ErrEncode if a rank cannot encode its data; and
// wraps the mpi errors and ctx.Err().
func Allgather[T any](ctx context.Context, c *mpi.Comm, data []T) (out []T, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kAllgather, elem, 0, 0)
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	return allgather(x, data)
}

// allgather is Allgather's work, once begun.
func allgather[T any](x *call, data []T) ([]T, error) {
	if x.posts {
		if out, done, err := postedGather(x, -1, data); done {
			return out, err
		}
	}
	enc, offer := encodeOffer(x, data)
	common, _, err := x.agree(x.collectUp(offer), func(all []byte) downPayload {
		x.st.info = 0
		blocks, err := parseBlocks(all)
		if err != nil || len(blocks) != x.size || len(all) > allgatherInline {
			return downPayload{}
		}
		for _, b := range blocks {
			if b == nil {
				return downPayload{}
			}
		}
		x.st.info = 1
		return downPayload{common: all}
	})
	if err != nil {
		return nil, err
	}
	var blocks [][]byte
	if x.st.info == 1 {
		if blocks, err = parseBlocks(common); err != nil || len(blocks) != x.size {
			return nil, fmt.Errorf("collectives: Allgather: rank %d got %d contributions of %d", x.rank, len(blocks), x.size)
		}
	} else if x.c.Multicast() {
		if blocks, err = x.fanAll(enc); err != nil {
			return nil, err
		}
	} else if blocks, err = x.bruck(enc); err != nil {
		return nil, err
	}
	return decodeAll[T](x, blocks)
}

// fanAll is the second phase of a large Allgather when the bus fans out:
// every rank publishes its data once, with SendAll, and receives every
// other rank's. The bus takes in each rank's data once, where a ring or
// Bruck exchange passes it through n-1 times. It returns the blocks in rank
// order, own among them.
func (x *call) fanAll(own []byte) ([][]byte, error) {
	reqs, err := x.fan(own, func(src int) *mpi.Request { return x.c.Irecv(src, x.tag(phaseFan)) })
	if err != nil {
		return nil, err
	}
	blocks := make([][]byte, x.size)
	for src, r := range reqs {
		if r != nil {
			blocks[src] = r.Data()
		}
	}
	blocks[x.rank] = own
	return blocks, nil
}

// fanInto is fanAll for blocks whose place is known: every other rank's
// block is received straight into into(src), which must be its exact size.
func (x *call) fanInto(own []byte, into func(src int) []byte) error {
	reqs, err := x.fan(own, func(src int) *mpi.Request { return x.c.IrecvInto(src, x.tag(phaseFan), into(src)) })
	if err != nil {
		return err
	}
	for src, r := range reqs {
		if r == nil {
			continue
		}
		dst := into(src)
		if x.marker(len(r.Data()), len(dst)) {
			continue
		}
		if n := len(r.Data()); n != len(dst) {
			return fmt.Errorf("collectives: %s: rank %d sent %d bytes, want %d", x.k, src, n, len(dst))
		}
		fromWire(x.elem, dst)
	}
	return nil
}

// fan posts a receive (with post) from every other rank, publishes own with
// SendAll, and waits for the receives; it returns them by rank (nil for
// this one).
func (x *call) fan(own []byte, post func(src int) *mpi.Request) ([]*mpi.Request, error) {
	reqs := make([]*mpi.Request, x.size)
	for src := range x.size {
		if src != x.rank {
			reqs[src] = post(src)
		}
	}
	others := append(reqs[:x.rank:x.rank], reqs[x.rank+1:]...)
	if err := x.c.SendAll(x.ctx, x.tag(phaseFan), own); err != nil {
		for _, r := range others {
			r.Cancel()
		}
		return nil, opError(x.k, err)
	}
	if err := x.waitAll(others); err != nil {
		return nil, err
	}
	return reqs, nil
}

// encodeOffer encodes this rank's data, and returns it also as the offer to
// go with the check if it is at most gatherInline bytes (else the offer is
// nil). It records an encoding error.
func encodeOffer[T any](x *call, data []T) (enc, offer []byte) {
	enc, err := encode(x.elem, data)
	if err != nil {
		x.fail(codeEncode, "%v", err)
		return nil, nil
	}
	if len(enc) <= gatherInline {
		offer = enc
	}
	return enc, offer
}

// collectUp returns the up function of the calls that collect every rank's
// data: a rank sends up a block list with one entry for each rank of its
// subtree, its own offer first (nil where a rank offered none).
func (x *call) collectUp(offer []byte) func(kids [][]byte) []byte {
	return func(kids [][]byte) []byte {
		_, children, lo, hi := x.tree(x.rank)
		entries := make([][]byte, 1, hi-lo)
		entries[0] = offer
		for i, ch := range children {
			_, _, clo, chi := x.tree(ch)
			b, err := parseBlocks(kids[i])
			if kids[i] == nil || err != nil || len(b) != chi-clo {
				b = make([][]byte, chi-clo) // a mismatched call; the verdict will say so
			}
			entries = append(entries, b...)
		}
		return appendBlocks(nil, entries)
	}
}

// recvMissing receives straight from their ranks the blocks that did not go
// with the check.
func (x *call) recvMissing(blocks [][]byte) error {
	var reqs []*mpi.Request
	var from []int
	for r, b := range blocks {
		if b == nil {
			reqs = append(reqs, x.c.Irecv(r, x.tag(phaseData)))
			from = append(from, r)
		}
	}
	if err := x.waitAll(reqs); err != nil {
		return err
	}
	for i, r := range from {
		blocks[r] = reqs[i].Data()
	}
	return nil
}

// bruck is the second phase of a large Allgather: in the round of distance
// s, every rank sends the blocks it has (its own and the next ones, up to s)
// to rank-s and gets as many from rank+s. It returns the blocks in rank
// order.
func (x *call) bruck(own []byte) ([][]byte, error) {
	n := x.size
	have := [][]byte{own} // have[i] is the data of rank+i
	for _, s := range distances(n) {
		k := bruckCount(s, n)
		from := mod(x.rank+s, n)
		b, err := x.exchange(phaseData, mod(x.rank-s, n), appendBlocks(nil, have[:k]), from)
		if err != nil {
			return nil, err
		}
		blocks, err := parseBlocks(b)
		if err != nil || len(blocks) != k {
			return nil, fmt.Errorf("collectives: %s: rank %d sent %d blocks, want %d", x.k, from, len(blocks), k)
		}
		have = append(have, blocks...)
	}
	out := make([][]byte, n)
	for i, b := range have {
		out[(x.rank+i)%n] = b
	}
	return out, nil
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
