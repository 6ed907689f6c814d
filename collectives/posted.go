package collectives

import (
	"fmt"

	"github.com/gorun-hpc/gorun/internal/hostsync"
	"github.com/gorun-hpc/gorun/mpi"
)

// Posted calls. Where every rank of a communicator is on one host's shared
// memory, its shadow has flags there (hostsync): a Barrier waits on them
// alone, and a small Reduce, Allreduce, Scan, Exscan, Bcast, Gather or
// Allgather runs on them too. Each rank posts its data (at most a slot's:
// hostsync.Flags.SlotData) with the call's arguments in its slot, waits
// until every rank has arrived, and reads what it needs of everyone's
// slots: one wait, no message. The check that the calls match is the
// slots' headers: where some rank posted nothing for the call (its data
// did not fit, or it called another collective) or other arguments, every
// rank sees it in the same slots and takes the agreement, which names the
// mismatch.

// postsData reports whether a call of k, with length elements of elem,
// arrives on flags as it posts its data (post), rather than at its
// beginning (shadow.enter): a reduction of at most a slot, any Bcast,
// Gather or Allgather (their ranks that cannot post arrive without data).
func postsData(k kind, elem *elemInfo, length int, flags hostsync.Flags) bool {
	switch k {
	case kAllreduce, kReduce:
		return elem.raw // more than a slot is lent (lentAllreduce)
	case kScatter:
		return elem.raw // more than a slot is lent (lentScatter)
	case kScan, kExscan:
		return elem.raw && length*elem.size <= flags.SlotData()
	case kBcast, kGather, kAllgather:
		return true
	}
	return false
}

// post puts mine in this rank's slot for call x with args, or, where ok is
// false, arrives without data, which makes every rank take the agreement.
func (x *call) post(args uint64, mine []byte, ok bool) error {
	f := x.sh.flags
	if !ok || len(mine) > f.SlotData() {
		x.posted = true
		f.Arrive(x.seq, byte(x.k))
		return nil
	}
	if err := f.Post(x.ctx, x.seq, byte(x.k), args, mine); err != nil {
		return opError(x.k, err) // not arrived: end arrives
	}
	x.posted = true
	return nil
}

// collectLent is collect for a call where this rank may have lent its data
// (lent; nil where it did not): where the wait fails, it withdraws the loan.
func (x *call) collectLent(args uint64, lent []byte, each func(rank int, data []byte)) (same bool, err error) {
	same, err = x.collect(args, each)
	if err != nil && lent != nil {
		x.giveUp(1, lent)
	}
	return same, err
}

// collect waits for every rank's post of call x and gives each its data,
// in rank order; same is false where some rank posted none, or other args.
func (x *call) collect(args uint64, each func(rank int, data []byte)) (same bool, err error) {
	same, err = x.sh.flags.Collect(x.ctx, x.seq, byte(x.k), args, each)
	if err != nil {
		return false, opError(x.k, err)
	}
	return same, nil
}

// postedReduce is a small reduction (x.k) on the flags: each rank that
// has a result combines the data it needs itself, in rank order: every
// rank's for an Allreduce (so that every rank gets bit-for-bit the same
// result) and for a Reduce on root, ranks 0 to this one's for a Scan, to
// the one before for an Exscan. done is false where the call must take
// the agreement.
func postedReduce[T mpi.Number](x *call, root int, data []T, op Op[T], into []T) (out []T, done bool, err error) {
	switch {
	case x.k == kAllreduce && len(data)*x.elem.size > x.sh.flags.SlotData():
		return lentAllreduce(x, -1, data, op, into)
	case x.k == kReduce && len(data)*x.elem.size > x.sh.flags.SlotData():
		return lentAllreduce(x, root, data, op, nil)
	}
	args := uint64(x.elem.id) ^ uint64(root)<<32
	if err := x.post(args, mpi.AsBytes(data), root >= 0 && root < x.size && x.local == nil); err != nil {
		return nil, true, err
	}
	upto := x.size // the ranks whose data this rank combines
	switch {
	case x.k == kScan:
		upto = x.rank + 1
	case x.k == kExscan:
		upto = x.rank
	case x.k == kReduce && x.rank != root:
		upto = 0
	}
	acc := make([]T, len(data))
	lengths := true
	same, err := x.collect(args, func(r int, b []byte) {
		in, err := mpi.FromBytes[T](b)
		switch {
		case err != nil || len(in) != len(acc):
			lengths = false // every rank looks at every rank's: they all see it
		case !lengths || r >= upto:
		case r == 0:
			copy(acc, in)
		default:
			apply(x, op, acc, in) // a panic is done's to raise again
		}
	})
	if err != nil || !same || !lengths {
		return nil, err != nil, err
	}
	if upto == 0 {
		return nil, true, nil // a Reduce off root, an Exscan on rank 0
	}
	return acc, true, nil
}

// postedBcast is a Bcast on the flags: root posts its encoded data where
// it fits a slot, or lends it (lentBcast), the others nothing but the
// call's arguments, and each decodes or copies root's: into data, where
// into is set (BcastInto: its length is in the arguments), else into a
// result of its own. done is false where the call must take the agreement
// (root's data did not fit and it could not lend it, or a root out of
// range, or arguments that differ).
func postedBcast[T any](x *call, root int, data []T, into bool) (out []T, done bool, err error) {
	args := uint64(x.elem.id) ^ uint64(root)<<32
	if into {
		args ^= uint64(len(data)+1) * 0x9e3779b97f4a7c15
	}
	ok := root >= 0 && root < x.size
	var mine, lent []byte
	if ok && x.rank == root {
		mine, lent, ok = rootPost(x, data)
	}
	if err := x.post(args, mine, ok); err != nil {
		return nil, true, err
	}
	if lent != nil && x.sh.lentHook != nil {
		x.sh.lentHook()
	}
	var derr error
	var loan []byte // root's slot, where it lent its data
	same, err := x.collectLent(args, lent, func(r int, b []byte) {
		switch {
		case r != root:
		case len(b) == x.sh.flags.SlotData():
			loan = b
		case x.rank == root:
		case into && len(b) != len(data)*x.elem.size:
			derr = fmt.Errorf("%d bytes from rank %d, want %d", len(b), root, len(data)*x.elem.size)
		case into:
			decodeInto(x.elem, data, b)
		default:
			out, derr = decode[T](x.elem, b) // a copy
		}
	})
	switch {
	case err != nil:
		return nil, true, err
	case !same:
		return nil, false, nil
	case loan != nil:
		out, err = lentBcast(x, root, data, into, args, lent, loan)
		return out, true, err
	case into:
	case x.rank == root:
		return clone(data), true, nil
	}
	if derr != nil {
		return nil, true, opError(x.k, fmt.Errorf("%w: %v", ErrEncode, derr))
	}
	return out, true, nil
}

// postedGather is a Gather (on root) or an Allgather (root -1) on the
// flags: every rank posts its encoded data where it fits a slot, and root,
// or every rank, decodes everyone's. done is false where the call must
// take the agreement.
func postedGather[T any](x *call, root int, data []T) (out []T, done bool, err error) {
	args := uint64(x.elem.id) ^ uint64(root)<<32
	mine, eerr := encode(x.elem, data)
	ok := eerr == nil && (x.k == kAllgather || root >= 0 && root < x.size)
	var lent []byte
	if ok && len(mine) >= x.sh.flags.SlotData() {
		if slot, can := x.lend(mine); can {
			lent, mine = mine, slot
		}
	}
	if err := x.post(args, mine, ok); err != nil {
		return nil, true, err
	}
	blocks := make([][]byte, x.size)
	loans := false
	same, err := x.collectLent(args, lent, func(r int, b []byte) {
		blocks[r] = b
		loans = loans || len(b) == x.sh.flags.SlotData()
	})
	switch {
	case err != nil:
		return nil, true, err
	case !same:
		return nil, false, nil
	case loans:
		out, err = lentGather[T](x, root, blocks, lent)
		return out, true, err
	}
	if x.k == kGather && x.rank != root {
		return nil, true, nil
	}
	out, err = decodeAll[T](x, blocks) // copies out of the slots
	return out, true, err
}

// postedScatter is a Scatter of numbers on the flags: root posts its data
// where it fits a slot, or lends it (lentScatter), the others nothing but
// the call's arguments, and each copies its block out of root's. done is
// false where the call must take the agreement (root out of range, or it
// could not lend).
func postedScatter[T any](x *call, root int, data []T) (out []T, done bool, err error) {
	args := uint64(x.elem.id) ^ uint64(root)<<32
	ok := x.checkRoot(root)
	var mine, lent []byte
	if ok && x.rank == root {
		mine, lent, ok = rootPost(x, data)
	}
	if err := x.post(args, mine, ok); err != nil {
		return nil, true, err
	}
	var all []byte // root's slot
	same, err := x.collectLent(args, lent, func(r int, b []byte) {
		if r == root {
			all = b
		}
	})
	switch {
	case err != nil:
		return nil, true, err
	case !same:
		return nil, false, nil
	case len(all) == x.sh.flags.SlotData():
		out, err = lentScatter[T](x, root, data, args, lent, all)
		return out, true, err
	case len(all)%x.elem.size != 0:
		return nil, true, opError(x.k, fmt.Errorf("%w: rank %d posted %d bytes of %s", ErrEncode, root, len(all), x.elem.name))
	}
	o := offsets(blockCounts(len(all)/x.elem.size, x.size))
	out = make([]T, o[x.rank+1]-o[x.rank])
	decodeInto(x.elem, out, all[o[x.rank]*x.elem.size:o[x.rank+1]*x.elem.size])
	return out, true, nil
}

// rootPost is what root posts of its data on the flags, for a Bcast or a
// Scatter: the encoded data where it fits a slot, else the loan of it
// (lent); ok is false where it can do neither (the agreement runs, and
// reports an encoding error).
func rootPost[T any](x *call, data []T) (post, lent []byte, ok bool) {
	enc, err := encode(x.elem, data)
	switch {
	case err != nil:
		return nil, nil, false
	case len(enc) < x.sh.flags.SlotData():
		return enc, nil, true
	}
	post, ok = x.lend(enc)
	if !ok {
		return nil, nil, false
	}
	return post, enc, true
}
