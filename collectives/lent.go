package collectives

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/gorun-hpc/gorun/internal/hostsync"
	"github.com/gorun-hpc/gorun/mpi"
)

// Lent data. A Bcast whose data does not fit a slot, on flags whose ranks
// may read each other's memory (single copies, see mpi.WithSingleCopy),
// moves with no message: root posts where its encoded data lies and how
// long it is, a slot filled to the brim (data that fits is shorter), and
// every other rank copies it straight out of root's memory into its
// result (one copy, by the kernel), then arrives at the call's release:
// one more call number, which every rank reserves once it has seen root's
// loan (they all see it in the same slot). Root returns once every rank
// has arrived there, and keeps its data as it is until then. A rank that
// could not copy (its kernel would not let it) says so in its post for
// the release, with one byte, and root sends it the data in a message.
// Where root gives up before every rank has copied (its ctx ended, a rank
// died), it withdraws its post: a copy under way, or made later, then
// fails on that rank (hostsync.Flags.Copy checks after copying that root
// still lends), and no rank uses what root's memory holds after root
// returned. The slot is written again only for the call after the
// release, once every rank has arrived there, so it holds the loan for as
// long as any rank reads it.
//
// A Gather or an Allgather lends the same way, each rank whose data does
// not fit its slot (lentGather): root, or every rank, copies the lent
// blocks, and a rank that lent waits at the release for the readers. An
// Allreduce lends every rank's data (lentreduce.go).

// A loan, in root's slot: where the data lies, and its length.
const (
	loanAddr = 0
	loanLen  = 8
)

// lend returns the slot to post for root's data enc, lent; ok is false
// where this rank cannot lend.
func (x *call) lend(enc []byte) (slot []byte, ok bool) {
	addr, ok := x.sh.flags.Lend(enc)
	if !ok {
		return nil, false
	}
	slot = make([]byte, x.sh.flags.SlotData())
	binary.LittleEndian.PutUint64(slot[loanAddr:], addr)
	binary.LittleEndian.PutUint64(slot[loanLen:], uint64(len(enc)))
	return slot, true
}

// reserve numbers a step of the call: the next call number, which every
// rank reserves alike (it has seen the same loans). end arrives there
// where the call did not.
func (x *call) reserve() uint32 {
	x.sh.mu.Lock()
	x.sh.seq++
	x.rel = x.sh.seq
	x.sh.mu.Unlock()
	return x.rel
}

// giveUp withdraws what this rank lent for the call (in its posts from
// seq to seq+k), as it returns before every rank is done with it: keep
// is what it lent, alive until then. The k numbers after seq stay
// reserved: the others reserve them alike once they see the loans.
func (x *call) giveUp(k uint32, keep ...[]byte) {
	for s := x.seq; s <= x.seq+k; s++ {
		x.sh.flags.Withdraw(s)
	}
	runtime.KeepAlive(keep)
	for x.rel < x.seq+k {
		x.reserve()
	}
}

// lentBcast is a Bcast whose root lent its data (lent, on root; its slot
// is loan, on every rank): into data where into is set (BcastInto), else
// into a result of its own.
func lentBcast[T any](x *call, root int, data []T, into bool, args uint64, lent, loan []byte) ([]T, error) {
	f := x.sh.flags
	rel := x.reserve()
	if x.rank == root {
		var out []T
		if !into {
			out = clone(data) // while the others copy
		}
		if err := x.arriveAt(rel, args, nil); err != nil {
			x.giveUp(1, lent)
			return nil, err
		}
		if err := x.lenderRelease(rel, args, lent, func(int) []byte { return lent }); err != nil {
			return nil, err
		}
		return out, nil
	}
	addr := binary.LittleEndian.Uint64(loan[loanAddr:])
	n64 := binary.LittleEndian.Uint64(loan[loanLen:])
	if n64 < uint64(f.SlotData()) || n64 > math.MaxInt || x.elem.raw && n64%uint64(x.elem.size) != 0 {
		x.arriveAt(rel, args, nil)
		return nil, fmt.Errorf("collectives: Bcast: rank %d lent %d bytes of %s", root, n64, x.elem.name)
	}
	n := int(n64)
	var out []T
	var buf []byte
	var err error
	switch {
	case into && n != len(data)*x.elem.size:
		err = fmt.Errorf("collectives: Bcast: rank %d lent %d bytes, want %d", root, n, len(data)*x.elem.size)
		x.arriveAt(rel, args, nil)
		return nil, opError(x.k, err)
	case n > probeAbove:
		err = f.Copy(x.seq, root, addr+uint64(n-1), make([]byte, 1)) // root has that many bytes, before they are allocated
	}
	if err == nil {
		switch {
		case into:
			out, buf = data, rawBytes(data)
		case x.elem.raw:
			out = make([]T, n/x.elem.size)
			buf = rawBytes(out)
		default:
			buf = make([]byte, n)
		}
		err = f.Copy(x.seq, root, addr, buf)
	}
	if errors.Is(err, hostsync.ErrWithdrawn) {
		x.arriveAt(rel, args, nil)
		return nil, opError(x.k, err)
	}
	if err != nil {
		// Root sends it in a message.
		if err := x.arriveAt(rel, args, []byte{1}); err != nil {
			return nil, err
		}
		p, err := x.recv(root)
		if err == nil && len(p) != n {
			err = fmt.Errorf("collectives: Bcast: %d bytes from rank %d, want %d", len(p), root, n)
		}
		switch {
		case err != nil:
			return nil, err
		case into:
			decodeInto(x.elem, data, p)
			return data, nil
		}
		if v, ok := viewRaw[T](x.elem, p); ok {
			return v, nil
		}
		return decodeResult[T](x, p)
	}
	if err := x.arriveAt(rel, args, nil); err != nil {
		return nil, err
	}
	if out != nil {
		fromWire(x.elem, buf)
		return out, nil
	}
	return decodeResult[T](x, buf)
}

// lenderRelease is what a rank that lent its data (lent) does once it has
// arrived at the call's release rel: it waits until every rank has, then
// sends part(r) in a message to each rank r that said there it could not
// copy. Where the wait fails, it withdraws its loan.
func (x *call) lenderRelease(rel uint32, args uint64, lent []byte, part func(r int) []byte) error {
	var short []int
	same, err := x.sh.flags.Collect(x.ctx, rel, byte(x.k), args, func(r int, b []byte) {
		if len(b) > 0 {
			short = append(short, r)
		}
	})
	if err == nil && !same {
		err = fmt.Errorf("a rank arrived at call #%d, this call's release, with another call", rel)
	}
	if err != nil {
		x.giveUp(1, lent)
		return opError(x.k, err)
	}
	sends := make([]*mpi.Request, 0, len(short))
	for _, r := range short {
		sends = append(sends, x.send(r, part(r)))
	}
	err = x.waitAll(sends)
	runtime.KeepAlive(lent)
	return err
}

// arriveAt posts this rank's word for step s of the call (a number it
// reserved), and arrives there.
func (x *call) arriveAt(s uint32, args uint64, post []byte) error {
	if err := x.sh.flags.Post(x.ctx, s, byte(x.k), args, post); err != nil {
		return opError(x.k, err) // not arrived: end arrives
	}
	x.at = s
	return nil
}

// probeAbove is the size of a loan above which a rank first copies its
// last byte, before it allocates that much (a root that says it lent more
// than it has makes no rank allocate it).
const probeAbove = 64 << 20

// lentGather is a Gather (on root) or an Allgather (root -1) on the flags
// where some ranks lent their data (blocks holds every rank's slot: its
// data, or a loan; lent is this rank's data where it lent it). The ranks
// that read (root, or all) copy the lent blocks out of their owners'
// memory, then every rank arrives at the call's release; a rank that lent
// waits there until every rank has (its data is read until then). A
// reader that could not copy says so there, with one byte, and every rank
// that lent sends it its data in a message.
func lentGather[T any](x *call, root int, blocks [][]byte, lent []byte) ([]T, error) {
	f := x.sh.flags
	rel := x.reserve()
	args := uint64(x.elem.id) ^ uint64(root)<<32
	reads := x.k == kAllgather || x.rank == root
	var out []T
	var err error
	if reads {
		out, err = copyBlocks[T](x, blocks, lent)
	}
	lenders := make([]int, 0, x.size)
	for r, b := range blocks {
		if len(b) == f.SlotData() && r != x.rank {
			lenders = append(lenders, r)
		}
	}
	var post []byte
	switch {
	case errors.Is(err, hostsync.ErrWithdrawn) || errors.Is(err, ErrEncode):
		x.arriveAt(rel, args, nil)
		return nil, err
	case err != nil:
		post = []byte{1} // the lenders send their data
		for r, b := range blocks {
			if len(b) != f.SlotData() {
				blocks[r] = bytes.Clone(b) // the slots change once all have arrived
			}
		}
	}
	// The inline blocks are read: the slots may change once all arrive.
	if err := x.arriveAt(rel, args, post); err != nil {
		if lent != nil {
			x.giveUp(1, lent)
		}
		return nil, err
	}
	if lent != nil {
		if err := x.lenderRelease(rel, args, lent, func(int) []byte { return lent }); err != nil {
			return nil, err
		}
	}
	if post == nil {
		return out, nil
	}
	// This rank could not copy: every lender sends its data.
	for _, r := range lenders {
		p, err := x.recv(r)
		if err != nil {
			return nil, err
		}
		blocks[r] = p
	}
	if lent != nil {
		blocks[x.rank] = lent
	}
	return decodeAll[T](x, blocks)
}

// copyBlocks returns every rank's data of blocks, in rank order, decoded:
// a slot's data, or a lent block copied out of its owner's memory (this
// rank's own is lent, where it lent it). It replaces each loan in blocks
// with a block of its own where the elements are not raw.
func copyBlocks[T any](x *call, blocks [][]byte, lent []byte) ([]T, error) {
	f := x.sh.flags
	size := make([]int, len(blocks))
	addr := make([]uint64, len(blocks))
	total := 0
	for r, b := range blocks {
		size[r] = len(b)
		if len(b) == f.SlotData() {
			n := binary.LittleEndian.Uint64(b[loanLen:])
			if n < uint64(f.SlotData()) || n > math.MaxInt/2 || x.elem.raw && n%uint64(x.elem.size) != 0 {
				return nil, opError(x.k, fmt.Errorf("%w: rank %d lent %d bytes of %s", ErrEncode, r, n, x.elem.name))
			}
			size[r], addr[r] = int(n), binary.LittleEndian.Uint64(b[loanAddr:])
			if r != x.rank && n > probeAbove {
				// That rank has that many bytes, before they are allocated.
				if err := f.Copy(x.seq, r, addr[r]+n-1, make([]byte, 1)); err != nil {
					return nil, opError(x.k, err)
				}
			}
		}
		total += size[r]
	}
	if !x.elem.raw {
		for r, b := range blocks {
			switch {
			case len(b) != f.SlotData():
			case r == x.rank:
				blocks[r] = lent
			default:
				buf := make([]byte, size[r])
				if err := f.Copy(x.seq, r, addr[r], buf); err != nil {
					return nil, opError(x.k, err)
				}
				blocks[r] = buf
			}
		}
		return decodeAll[T](x, blocks)
	}
	if total%x.elem.size != 0 {
		return nil, opError(x.k, fmt.Errorf("%w: %d bytes are not a whole number of %s", ErrEncode, total, x.elem.name))
	}
	out := make([]T, total/x.elem.size)
	wire := rawBytes(out)
	at := 0
	for r, b := range blocks {
		dst := wire[at : at+size[r]]
		at += size[r]
		switch {
		case len(b) != f.SlotData():
			copy(dst, b)
		case r == x.rank:
			copy(dst, lent)
		default:
			if err := f.Copy(x.seq, r, addr[r], dst); err != nil {
				return nil, opError(x.k, err)
			}
		}
	}
	fromWire(x.elem, wire)
	return out, nil
}

// lentScatter is a Scatter whose root lent its data (lent, on root; its
// slot is loan, on every rank): each rank copies its block out of root's
// memory, as lentBcast's ranks copy all of it, and root returns once all
// have arrived at the release (sending its block in a message to a rank
// that could not copy).
func lentScatter[T any](x *call, root int, data []T, args uint64, lent, loan []byte) ([]T, error) {
	f := x.sh.flags
	rel := x.reserve()
	addr := binary.LittleEndian.Uint64(loan[loanAddr:])
	n64 := binary.LittleEndian.Uint64(loan[loanLen:])
	if n64 > math.MaxInt/2 || n64%uint64(x.elem.size) != 0 {
		x.arriveAt(rel, args, nil)
		return nil, opError(x.k, fmt.Errorf("%w: rank %d lent %d bytes of %s", ErrEncode, root, n64, x.elem.name))
	}
	o := offsets(blockCounts(int(n64)/x.elem.size, x.size))
	block := func(r int) (off, n int) { return o[r] * x.elem.size, (o[r+1] - o[r]) * x.elem.size }
	if x.rank == root {
		off, n := block(root)
		out := make([]T, n/x.elem.size)
		copy(rawBytes(out), lent[off:off+n])
		fromWire(x.elem, rawBytes(out))
		if err := x.arriveAt(rel, args, nil); err != nil {
			x.giveUp(1, lent)
			return nil, err
		}
		err := x.lenderRelease(rel, args, lent, func(r int) []byte {
			off, n := block(r)
			return lent[off : off+n]
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	off, n := block(x.rank)
	out := make([]T, n/x.elem.size)
	var err error
	if n > 0 {
		err = f.Copy(x.seq, root, addr+uint64(off), rawBytes(out))
	}
	switch {
	case errors.Is(err, hostsync.ErrWithdrawn):
		x.arriveAt(rel, args, nil)
		return nil, opError(x.k, err)
	case err != nil:
		// Root sends it in a message.
		if err := x.arriveAt(rel, args, []byte{1}); err != nil {
			return nil, err
		}
		p, err := x.recv(root)
		if err == nil && len(p) != n {
			err = fmt.Errorf("collectives: %s: %d bytes from rank %d, want %d", x.k, len(p), root, n)
		}
		if err != nil {
			return nil, err
		}
		decodeInto(x.elem, out, p)
		return out, nil
	}
	if err := x.arriveAt(rel, args, nil); err != nil {
		return nil, err
	}
	fromWire(x.elem, rawBytes(out))
	return out, nil
}
