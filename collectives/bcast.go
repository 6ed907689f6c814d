package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Tuning. Data up to these sizes rides in the first phase's messages; larger
// data moves in a second phase, once the ranks agree, by the algorithm that
// suits bulk data. The first two keep those messages under mpi's eager
// limit (64 KiB by default), so that they go out without a rendezvous.
const (
	// bcastInline is the largest Bcast (in wire bytes) that travels with
	// the check, and scatterInline the largest Scatter(v) in total.
	bcastInline   = 60 << 10
	scatterInline = 60 << 10
	// gatherInline is the largest contribution of one rank to a Gather,
	// Allgather, Alltoall or Scan that travels with the check; larger ones
	// move in the second phase.
	gatherInline = 16 << 10
	// allgatherInline is the largest Allgather (all ranks' data together)
	// that comes back down with the check.
	allgatherInline = 256 << 10
	// bcastSegment is the segment size of the pipelined tree broadcast.
	bcastSegment = 512 << 10
)

// Bcast sends root's data to every rank of c, and returns it on every rank
// (on root too, as a copy: the result never shares memory with data). Only
// root's data is read; the others may pass nil. Every rank must pass the
// same root. It blocks until this rank has its copy and has passed it on.
//
// Where every rank of c is on one host's shared memory, no message moves:
// root's data, where it encodes to less than 4144 bytes (4 KiB and a
// little more), goes in root's slot there, and the others copy it out
// once all have arrived; larger data, root lends (where the ranks may read
// each other's memory: mpi.WithSingleCopy, the default), and each rank
// copies it straight out of root's memory into its result, root returning
// once all have. Elsewhere, data up to 60 KiB goes with the call's check,
// from root through rank 0 to every rank (two hops). Larger data moves
// after the check in one publish from root that the bus fans out to every
// rank (on a communicator that spans the world; between ranks of one
// machine, each copies it out of root's memory), or else along a binomial
// tree from root, pipelined in 512 KiB segments. Numbers travel as raw
// little-endian bytes, other element types with encoding/gob. BcastInto
// receives into the caller's buffer instead, as MPI_Bcast.
//
// Every rank returns an error wrapping mpi.ErrRank if root is out of range
// on any rank, ErrMismatch if the ranks pass different roots or element
// types (naming two ranks and their roots), ErrEncode if root cannot encode
// data; and wraps the mpi errors and ctx.Err().
func Bcast[T any](ctx context.Context, c *mpi.Comm, root int, data []T) (out []T, err error) {
	elem := infoOf[T]()
	x, err := begin(ctx, c, kBcast, elem, root, 0)
	if err != nil {
		return nil, err
	}
	defer func() { out, err = done(x, out, err) }()
	return bcast(x, root, data)
}

// BcastInto is Bcast into buf, as MPI_Bcast: root sends buf, and every
// other rank receives root's data into its own buf, whose length must be
// root's on every rank (else every rank returns an error wrapping
// ErrMismatch that names two ranks and their lengths). Nothing is
// allocated for the result, and root's buf is not copied for root.
//
// Where every rank of c is on one host's shared memory and may read the
// others' memory (mpi.WithSingleCopy, the default), a buf larger than a
// slot (4144 bytes) moves with no message at all: each rank copies it
// straight out of root's buf into its own (one copy, by the kernel), and
// root returns once every rank has. Elsewhere it moves as Bcast's data
// does, and each rank then copies its result into buf.
//
// The errors are Bcast's.
func BcastInto[T mpi.Number](ctx context.Context, c *mpi.Comm, root int, buf []T) (err error) {
	x, err := begin(ctx, c, kBcast, infoOf[T](), root, len(buf))
	if err != nil {
		return err
	}
	defer func() { _, err = done[T](x, nil, err) }()
	if x.posts {
		_, done, err := postedBcast(x, root, buf, true)
		if done {
			return err
		}
	}
	out, err := bcastAgreed(x, root, buf)
	if err == nil && x.rank != root {
		copy(buf, out) // the agreement made sure the lengths are the same
	}
	return err
}

// bcast is Bcast's work, once begun.
func bcast[T any](x *call, root int, data []T) ([]T, error) {
	if x.posts {
		if out, done, err := postedBcast(x, root, data, false); done {
			return out, err
		}
	}
	return bcastAgreed(x, root, data)
}

// bcastAgreed is a Bcast's work where it does not run on the flags: the
// agreement, with the data where it is small, then the data.
func bcastAgreed[T any](x *call, root int, data []T) ([]T, error) {
	elem := x.elem
	var offer []byte // root's data, if it goes with the check
	if x.checkRoot(root) && x.rank == root {
		enc, err := encode(elem, data)
		if err != nil {
			x.fail(codeEncode, "root %d: %v", root, err)
		} else {
			x.st.info = int64(len(enc)) << 1
			if len(enc) <= bcastInline {
				x.st.info |= 1
				offer = enc
			}
		}
	}
	common, _, err := x.agree(func(kids [][]byte) []byte {
		return firstOf(offer, kids)
	}, func(mine []byte) downPayload {
		if x.st.info&1 == 1 {
			return downPayload{common: mine}
		}
		return downPayload{}
	})
	if err != nil {
		return nil, err
	}
	if x.st.info&1 == 1 {
		if x.rank == root {
			return clone(data), nil
		}
		if common == nil {
			return nil, fmt.Errorf("collectives: Bcast: no data reached rank %d", x.rank)
		}
		out, err := decode[T](elem, common)
		if err != nil {
			return nil, opError(x.k, fmt.Errorf("%w: %v", ErrEncode, err))
		}
		return out, nil
	}
	return bcastLarge(x, root, data, int(x.st.info>>1))
}

// firstOf returns own if not nil, else the first payload of kids that is
// not nil: a single rank's data on its way up to the leader.
func firstOf(own []byte, kids [][]byte) []byte {
	if own != nil {
		return own
	}
	for _, k := range kids {
		if k != nil {
			return k
		}
	}
	return nil
}

// bcastLarge is the second phase of a large Bcast of n wire bytes: a
// fanned-out publish, or a binomial tree pipelined in segments with every
// receive posted at once. Numbers are received straight into the result.
func bcastLarge[T any](x *call, root int, data []T, n int) ([]T, error) {
	elem := x.elem
	if x.rank == root {
		enc, err := encode(elem, data) // no copy for numbers on little-endian hosts
		if err != nil {
			return nil, opError(x.k, err)
		}
		if !x.c.Multicast() {
			err = x.treeBcast(root, enc)
		} else if err = x.c.SendAll(x.ctx, x.tag(phaseData), enc); err != nil {
			err = opError(x.k, err)
		}
		if err != nil {
			return nil, err
		}
		return clone(data), nil
	}
	if x.c.Multicast() {
		// One publish from root, fanned out by the bus; the message's own
		// memory is the result when it can be.
		p, err := x.recv(root)
		if err == nil && len(p) != n {
			err = fmt.Errorf("collectives: Bcast: %d bytes from rank %d, want %d", len(p), root, n)
		}
		if err != nil {
			return nil, err
		}
		if v, ok := viewRaw[T](elem, p); ok {
			return v, nil
		}
		return decodeResult[T](x, p)
	}
	var out []T
	var buf []byte
	if elem.raw && n%elem.size == 0 {
		out = make([]T, n/elem.size) // the tree's segments land in it straight
		buf = rawBytes(out)
	} else {
		buf = make([]byte, n)
	}
	if err := x.treeBcast(root, buf); err != nil {
		return nil, err
	}
	if out != nil {
		fromWire(elem, buf)
		return out, nil
	}
	return decodeResult[T](x, buf)
}

// decodeResult decodes the wire form b of a result.
func decodeResult[T any](x *call, b []byte) ([]T, error) {
	out, err := decode[T](x.elem, b)
	if err != nil {
		return nil, opError(x.k, fmt.Errorf("%w: %v", ErrEncode, err))
	}
	return out, nil
}

// treeBcast moves buf from root to every rank along the binomial tree, in
// segments: a rank passes each segment on to its children as soon as it has
// it.
func (x *call) treeBcast(root int, buf []byte) error {
	parent, children := binomialTree(x.rank, root, x.size)
	nseg := (len(buf) + bcastSegment - 1) / bcastSegment
	var recvs []*mpi.Request
	if parent >= 0 {
		recvs = make([]*mpi.Request, nseg)
		for i := range recvs {
			seg := buf[i*bcastSegment : min(len(buf), (i+1)*bcastSegment)]
			recvs[i] = x.c.IrecvInto(parent, x.tag(phaseData), seg)
		}
	}
	sends := make([]*mpi.Request, 0, nseg*len(children))
	for i := range nseg {
		seg := buf[i*bcastSegment : min(len(buf), (i+1)*bcastSegment)]
		if parent >= 0 {
			if _, err := recvs[i].Wait(x.ctx); err != nil {
				for _, r := range recvs[i:] {
					r.Cancel()
				}
				for _, r := range sends {
					r.Cancel()
				}
				return opError(x.k, err)
			}
			if p := recvs[i].Data(); len(p) != len(seg) {
				return fmt.Errorf("collectives: Bcast: segment %d from rank %d has %d bytes, want %d", i, parent, len(p), len(seg))
			}
		}
		for _, ch := range children {
			sends = append(sends, x.send(ch, seg))
		}
	}
	return x.waitAll(sends)
}

// clone returns a copy of xs that is never nil. (Appending to nil, unlike
// to a made slice, does not clear the memory it then overwrites.)
func clone[T any](xs []T) []T {
	if len(xs) == 0 {
		return []T{}
	}
	return append([]T(nil), xs...)
}
