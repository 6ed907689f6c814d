package collectives

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/gorun-hpc/gorun/internal/hostsync"
	"github.com/gorun-hpc/gorun/mpi"
)

// A lent Allreduce. Where every rank's data is larger than a slot and
// every rank lends it (see lent.go), the ranks reduce it between them with
// no message, each reading the others' memory: every rank posts a loan of
// its data (call seq), and once all have, rank r combines block r of the
// vector (the r-th of n near-equal parts) from every rank's data into its
// own result (which starts as a copy of its own data: an Op commutes);
// then posts a loan of its result
// with a status (call seq+1: the middle), and once all have, copies every
// other block out of its owner's result; then arrives at the release
// (call seq+2) and returns once every rank has (its result is read until
// then). The result may be the data itself (AllreduceInto in place): a
// rank writes only its own block of it before every rank has read its
// data (the middle), and the others read only their own blocks of that.
// Each rank moves 2(n-1)/n of the data, as a reduce-scatter and an
// allgather do, and every block is combined by one rank: the result is the
// same to the last bit everywhere. The status says what the
// others must do instead: a rank that could not read another's memory
// makes every rank take the agreement (nothing lent is read any more by
// then), one whose Op panicked fails the call everywhere, one whose loan
// was withdrawn (a rank gave the call up) fails it too.

// A loan of a result, in the middle post: where it lies, its length, and
// the rank's status.
const loanStatus = 16

// The status of a rank's reduction, in its middle post.
const (
	reducedOK        = iota
	reducedCopyFails // it could not read some rank's memory: take the agreement
	reducedWithdrawn // a rank withdrew its loan
	reducedPanicked  // the Op panicked on this rank
)

// lentAllreduce is an Allreduce (root -1) or a Reduce of data larger than
// a slot, on the flags: into the result into, where not nil (AllreduceInto:
// as long as data, and data itself or apart from it). done is false where
// the call must take the agreement.
func lentAllreduce[T mpi.Number](x *call, root int, data []T, op Op[T], into []T) (out []T, done bool, err error) {
	f := x.sh.flags
	args := uint64(x.elem.id) ^ uint64(root)<<32 ^ uint64(len(data)+1)*0x9e3779b97f4a7c15
	enc, err := encode(x.elem, data)
	var loan []byte
	ok := err == nil && x.local == nil
	if ok {
		loan, ok = x.lend(enc)
	}
	if err := x.post(args, loan, ok); err != nil {
		return nil, true, err
	}
	addrs := make([]uint64, x.size)
	same, err := x.collect(args, func(r int, b []byte) {
		if len(b) == f.SlotData() && binary.LittleEndian.Uint64(b[loanLen:]) == uint64(len(enc)) {
			addrs[r] = binary.LittleEndian.Uint64(b[loanAddr:])
		}
	})
	switch {
	case err != nil:
		if ok {
			x.giveUp(2, enc)
		}
		return nil, true, err
	case !same:
		return nil, false, nil
	}
	for r, a := range addrs {
		if a == 0 {
			return nil, true, opError(x.k, fmt.Errorf("rank %d lent no data of %d bytes", r, len(enc)))
		}
	}
	mid := x.reserve()
	rel := x.reserve()
	lo, hi := evenBlock(len(data), x.size, x.rank)
	var acc []T // this rank's block of the result
	inPlace := len(into) > 0 && &into[0] == &data[0]
	switch {
	case into != nil:
		out = into
	case root < 0 || x.rank == root:
		out = make([]T, len(data))
	}
	if out != nil && !inPlace {
		acc = out[lo:hi]
	} else {
		// A Reduce off root keeps only the block root reads; in place, the
		// block goes into the data once every rank has combined its own
		// (the data must stay as it was if they all take the agreement).
		acc = make([]T, hi-lo)
	}
	copy(acc, data[lo:hi]) // this rank's block starts from its own data: an Op commutes
	status := reduceLent(x, acc, addrs, lo, op)

	// The middle: every rank's status, and where its block lies.
	res := make([]byte, f.SlotData())
	if addr, ok := f.Lend(rawBytes(acc)); ok { // not an empty block
		binary.LittleEndian.PutUint64(res[loanAddr:], addr)
	}
	binary.LittleEndian.PutUint64(res[loanLen:], uint64(len(acc)*x.elem.size))
	binary.LittleEndian.PutUint64(res[loanStatus:], uint64(status))
	if err := x.arriveAt(mid, args, res); err != nil {
		x.giveUp(2, enc)
		return nil, true, err
	}
	worst := reducedOK
	same, err = f.Collect(x.ctx, mid, byte(x.k), args, func(r int, b []byte) {
		if len(b) != f.SlotData() {
			worst = max(worst, reducedWithdrawn)
			return
		}
		addrs[r] = binary.LittleEndian.Uint64(b[loanAddr:])
		worst = max(worst, int(binary.LittleEndian.Uint64(b[loanStatus:])))
	})
	switch {
	case err != nil:
		x.giveUp(2, enc, rawBytes(acc))
		return nil, true, opError(x.k, err)
	case !same || worst == reducedWithdrawn:
		x.giveUp(2, enc, rawBytes(acc))
		return nil, true, opError(x.k, fmt.Errorf("a rank gave the call up: %w", hostsync.ErrWithdrawn))
	case worst == reducedPanicked:
		x.failed = true // done says so, and panics again where the Op did
		return nil, true, nil
	case worst == reducedCopyFails:
		// Nothing lent is read any more: every rank takes the agreement.
		return nil, false, x.arriveAt(rel, args, nil)
	case inPlace:
		copy(out[lo:hi], acc) // no rank reads this rank's data any more
	}
	for r := range x.size {
		if r == x.rank || root >= 0 && x.rank != root {
			continue
		}
		rlo, rhi := evenBlock(len(data), x.size, r)
		if rlo == rhi {
			continue
		}
		if err := f.Copy(mid, r, addrs[r], rawBytes(out[rlo:rhi])); err != nil {
			x.giveUp(2, enc, rawBytes(acc))
			return nil, true, opError(x.k, err)
		}
	}
	// The release: the readers read this rank's block until they arrive
	// (a Reduce's root reads, and no rank reads root's).
	err = x.arriveAt(rel, args, nil)
	if err == nil && (root < 0 || x.rank != root) {
		_, err = f.Wait(x.ctx, rel, byte(x.k))
	}
	if err != nil {
		x.giveUp(2, enc, rawBytes(acc))
		return nil, true, opError(x.k, err)
	}
	if out == nil {
		return nil, true, nil
	}
	fromWire(x.elem, rawBytes(out))
	return out, true, nil
}

// reduceLent combines into acc, which holds this rank's own block (from
// element lo), the same block of every other rank's lent data, and says
// how it went (a reduced status).
func reduceLent[T mpi.Number](x *call, acc []T, addrs []uint64, lo int, op Op[T]) int {
	if len(acc) == 0 {
		return reducedOK
	}
	f := x.sh.flags
	off := uint64(lo * x.elem.size)
	sp := scratch.Get().(*[]byte)
	defer scratch.Put(sp)
	if n := len(acc) * x.elem.size; cap(*sp) < n {
		*sp = make([]byte, n)
	}
	buf := (*sp)[:len(acc)*x.elem.size]
	in, ok := viewRaw[T](x.elem, buf) // made as bytes: aligned for any number
	if !ok {
		in = make([]T, len(acc)) // a big-endian host
		buf = rawBytes(in)
	}
	for r := range x.size {
		if r == x.rank {
			continue
		}
		if err := f.Copy(x.seq, r, addrs[r]+off, buf); err != nil {
			if errors.Is(err, hostsync.ErrWithdrawn) {
				return reducedWithdrawn
			}
			return reducedCopyFails
		}
		fromWire(x.elem, buf)
		if !apply(x, op, acc, in) {
			return reducedPanicked
		}
	}
	return reducedOK
}

// scratch holds the buffers that a lent Allreduce reads the others' blocks
// into, kept from call to call (a fresh one is zeroed first).
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// evenBlock is block r of n elements cut in size near-equal blocks.
func evenBlock(n, size, r int) (lo, hi int) {
	return r * n / size, (r + 1) * n / size
}
