//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Channels: the flags that collectives of one communicator run on, where
// every rank of it is on this segment. A barrier there costs each rank an
// atomic add and a look at a counter, and no message; a small Allreduce
// the same, each rank having put its data in its slot first (Put), and
// combined everyone's after.
//
// The channel area is the segment's last part, page-aligned, so that each
// rank maps it apart from the rest (Open does, while it has the file):
// that mapping lives as long as anything uses it (a *Channel holds it, and
// the garbage collector unmaps it), so that a collective in flight when its
// world closes never touches unmapped memory.
//
//	areaOff + k*chanStride   channel k (of Channels):
//	  +0     the communicator's id, claimed by compare-and-swap (0: free)
//	  +64    count: a uint32 every member adds 1 to at each of its calls
//	  +68    sleepers: how many members sleep on count's futex
//	  +128   one 8-byte cell per local rank: the word of its last call
//	  then   one 4-byte word per local rank: armBell while it sleeps on
//	         its bell for this channel (bell.go)
//	  then   the slots: two sets (by a call number's parity) of one
//	         SlotBytes slot per local rank, each a header (the call's
//	         number, its data's length, its kind, its args) and the data
//
// A slot of call seq is written again for call seq+2 only: its writer
// first waits until every rank has arrived at call seq+1, which a rank
// does once it has read everything of call seq.
//
// A channel is claimed for good: a segment lives for one job, and a job
// that makes more communicators than Channels runs the later ones without.

// Channels is how many communicators of a job can have a channel.
const Channels = 64

const (
	chanID       = 0
	chanCount    = 64
	chanSleepers = 68
	chanCells    = lineSize
	pageSize     = 4096
)

// SlotBytes is the size of a rank's slot in a channel, its header
// included: SlotData bytes of data, 4 KiB and a little more. A call whose
// data fits is one wait on the flags; a larger one takes messages, the
// agreement's two hops (up to rank 0 and down) at least: at 2 ranks, a
// 1 KiB Allreduce took 12-16 us with messages (when slots were 256
// bytes), 4.3 us on the flags (Open MPI: 2.4). Only the slots written are
// ever touched: a channel of 8 ranks spans 65 KiB of the segment's file,
// of which a call touches a page per rank.
const SlotBytes = 4096 + lineSize

// SlotData is the most data a call puts in a slot.
const SlotData = SlotBytes - slotHeader

// A slot's header: the call's number (uint32), its data's length
// (uint16), its kind (byte), its flags (byte: slotWithdrawn), its args
// (uint64).
const (
	slotSeq    = 0
	slotLen    = 4
	slotKind   = 6
	slotFlags  = 7
	slotArgs   = 8
	slotHeader = 16
)

// slotWithdrawn is the flag of a withdrawn slot (Withdraw), in the header's
// second word (from slotLen: little-endian, so its top byte is slotFlags).
const slotWithdrawn = 1 << 24

func alignUp(x, a int) int { return (x + a - 1) / a * a }

func (l layout) cellsSize() int  { return alignUp(8*l.n, lineSize) }
func (l layout) bellsSize() int  { return alignUp(4*l.n, lineSize) }
func (l layout) chanStride() int { return lineSize + l.cellsSize() + l.bellsSize() + 2*l.n*SlotBytes }
func (l layout) areaOff() int    { return alignUp(l.ringsEnd(), pageSize) }
func (l layout) areaSize() int   { return alignUp(Channels*l.chanStride(), pageSize) }

// area is a rank's own mapping of the channel area, unmapped once nothing
// holds it.
type area struct {
	mem []byte
	l   layout
}

func mapArea(fd int, l layout) (*area, error) {
	mem, err := unix.Mmap(fd, int64(l.areaOff()), l.areaSize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	a := &area{mem: mem, l: l}
	runtime.AddCleanup(a, func(mem []byte) { unix.Munmap(mem) }, mem)
	return a, nil
}

// A Channel is a communicator's flags in the segment, as one local rank
// uses them.
type Channel struct {
	a     *area
	base  int   // the channel's offset in a.mem
	local int   // this rank's cell
	b     *bell // nil: sleep on the count's futex
}

// Channel finds the channel of the communicator id (not 0), or claims a
// free one for it. Every local rank of the communicator that asks gets the
// same one; ok is false when every channel is another's (then for every
// rank that asks later too, as channels are never freed).
func (e *Endpoint) Channel(id uint64) (ch *Channel, ok bool) {
	if id == 0 || e.area == nil {
		return nil, false
	}
	a := e.area
	start := int(id % Channels)
	for i := range Channels {
		k := (start + i) % Channels
		base := k * a.l.chanStride()
		p := (*uint64)(unsafe.Pointer(&a.mem[base+chanID]))
		if atomic.LoadUint64(p) == id || atomic.CompareAndSwapUint64(p, 0, id) || atomic.LoadUint64(p) == id {
			return &Channel{a: a, base: base, local: e.rank, b: e.b}, true
		}
	}
	return nil, false
}

func (ch *Channel) count() *uint32 {
	return (*uint32)(unsafe.Pointer(&ch.a.mem[ch.base+chanCount]))
}

func (ch *Channel) sleepers() *uint32 {
	return (*uint32)(unsafe.Pointer(&ch.a.mem[ch.base+chanSleepers]))
}

func (ch *Channel) cell(local int) *uint64 {
	return (*uint64)(unsafe.Pointer(&ch.a.mem[ch.base+chanCells+8*local]))
}

func (ch *Channel) armed(local int) *uint32 {
	return (*uint32)(unsafe.Pointer(&ch.a.mem[ch.base+chanCells+ch.a.l.cellsSize()+4*local]))
}

// Arrive records word as this rank's last call and counts it. target is
// what the count reaches once every member has arrived at this call (the
// count wraps at 2^32: members*calls, as uint32): the rank whose arrival
// reaches it wakes the members asleep in Wait, and so does every arrival
// past it (a member that went on to a later call before this one's last
// arrived, as a lent Bcast's do: a member waiting for this call then waits
// for a count past its own target, see mpi's hostFlags.wait).
func (ch *Channel) Arrive(word uint64, target uint32) {
	atomic.StoreUint64(ch.cell(ch.local), word)
	if int32(atomic.AddUint32(ch.count(), 1)-target) < 0 {
		return
	}
	if atomic.LoadUint32(ch.sleepers()) > 0 {
		futexWakeAll(ch.count())
	}
	if ch.b == nil {
		return // a rank on its bell sleeps a tick
	}
	for r := range ch.a.l.n {
		if r != ch.local && atomic.LoadUint32(ch.armed(r)) == armBell && atomic.SwapUint32(ch.armed(r), 0) == armBell {
			ch.b.ring(r, ch.local)
		}
	}
}

// Cell is the word local rank local last arrived with.
func (ch *Channel) Cell(local int) uint64 {
	if local < 0 || local >= ch.a.l.n {
		return 0
	}
	return atomic.LoadUint64(ch.cell(local))
}

// slot is local rank local's slot for calls of parity seq%2, or nil for a
// local rank out of range.
func (ch *Channel) slot(seq uint32, local int) []byte {
	n := ch.a.l.n
	if local < 0 || local >= n {
		return nil
	}
	off := ch.base + chanCells + ch.a.l.cellsSize() + ch.a.l.bellsSize() + (int(seq%2)*n+local)*SlotBytes
	return ch.a.mem[off : off+SlotBytes : off+SlotBytes]
}

// Put writes data (at most SlotData bytes) in this rank's slot for call
// seq, with the call's kind and args; it reports false, writing nothing,
// for more data. The caller must know that no rank reads the slot still:
// that every rank has arrived at call seq-1 (see the layout above). The
// others see the slot once this rank arrives at seq (Arrive).
func (ch *Channel) Put(seq uint32, kind byte, args uint64, data []byte) bool {
	if len(data) > SlotData {
		return false
	}
	b := ch.slot(seq, ch.local)
	binary.LittleEndian.PutUint32(b[slotSeq:], seq)
	binary.LittleEndian.PutUint16(b[slotLen:], uint16(len(data)))
	b[slotKind] = kind
	b[slotFlags] = 0
	binary.LittleEndian.PutUint64(b[slotArgs:], args)
	copy(b[slotHeader:], data)
	return true
}

// Slot returns the data local rank local put for call seq, where its slot
// holds that call with kind and args; ok is false where it holds another
// (that rank did not put its data there for this call, or put another
// kind's, or other args), or its header is out of bounds. The caller must
// know that local has arrived at seq. The data is the segment's memory,
// which its writer does not write again before every rank has arrived at
// seq+1.
func (ch *Channel) Slot(seq uint32, kind byte, args uint64, local int) (data []byte, ok bool) {
	b := ch.slot(seq, local)
	if b == nil || binary.LittleEndian.Uint32(b[slotSeq:]) != seq || b[slotKind] != kind || binary.LittleEndian.Uint64(b[slotArgs:]) != args {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint16(b[slotLen:]))
	if n > SlotData {
		return nil, false
	}
	return b[slotHeader : slotHeader+n : slotHeader+n], true
}

// Withdraw marks what this rank put for call seq as withdrawn: the
// others still see it (Slot), but Holds says it is no longer so. For a
// rank that lent memory of its own in its slot and must stop lending
// before the others have said they are done.
func (ch *Channel) Withdraw(seq uint32) {
	b := ch.slot(seq, ch.local)
	if binary.LittleEndian.Uint32(b[slotSeq:]) == seq {
		atomic.OrUint32((*uint32)(unsafe.Pointer(&b[slotLen])), slotWithdrawn)
	}
}

// Holds reports whether local rank local's slot holds call seq, not
// withdrawn (not written for a later call either): read after using what
// the slot lent, it says that the lender kept it as it was until then.
func (ch *Channel) Holds(seq uint32, local int) bool {
	b := ch.slot(seq, local)
	return b != nil && atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[slotSeq]))) == seq &&
		atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[slotLen])))&slotWithdrawn == 0
}

// ErrStopped is Wait's answer when stop said to stop.
var ErrStopped = errors.New("shm: channel wait stopped")

// Wait returns once the count has reached target (every member arrived),
// looking at it as spin says (see Spin), then sleeping on it; every tick
// it asks stop, and returns ErrStopped if stop says so.
func (ch *Channel) Wait(target uint32, spin Spin, tick time.Duration, stop func() bool) error {
	reached := func(c uint32) bool { return int32(c-target) >= 0 }
	cnt := ch.count()
	if reached(atomic.LoadUint32(cnt)) {
		return nil
	}
	if spin.For > 0 {
		for s := spin.Start(); ; {
			if reached(atomic.LoadUint32(cnt)) {
				return nil
			}
			if !s.Next() {
				break
			}
		}
	}
	if ch.b != nil {
		return ch.sleep(target, tick, stop)
	}
	for {
		if ch.stopped(target, stop) {
			return ErrStopped
		}
		if reached(atomic.LoadUint32(cnt)) {
			return nil // stop said so, but too late
		}
		atomic.AddUint32(ch.sleepers(), 1)
		c := atomic.LoadUint32(cnt)
		if reached(c) {
			atomic.AddUint32(ch.sleepers(), ^uint32(0))
			return nil
		}
		err := futexWait(cnt, c, tick)
		atomic.AddUint32(ch.sleepers(), ^uint32(0))
		if err != nil {
			return err
		}
		if reached(atomic.LoadUint32(cnt)) {
			return nil
		}
	}
}

// sleep is Wait's sleep on the bell: this rank's word armed, then the
// count looked at once more before the sleep (Arrive adds to the count,
// then reads the words).
func (ch *Channel) sleep(target uint32, tick time.Duration, stop func() bool) error {
	cnt := ch.count()
	t := sleepTimers.Get().(*time.Timer)
	t.Reset(tick)
	defer func() {
		t.Stop()
		sleepTimers.Put(t)
	}()
	for {
		if ch.stopped(target, stop) {
			return ErrStopped
		}
		if int32(atomic.LoadUint32(cnt)-target) >= 0 {
			return nil // stop said so, but too late
		}
		woken := ch.b.next()
		atomic.StoreUint32(ch.armed(ch.local), armBell)
		if int32(atomic.LoadUint32(cnt)-target) < 0 {
			t.Reset(tick)
			select {
			case <-woken:
			case <-t.C:
			}
		}
		atomic.StoreUint32(ch.armed(ch.local), 0)
		if int32(atomic.LoadUint32(cnt)-target) >= 0 {
			return nil
		}
	}
}

// sleepTimers are sleep's timers, kept between sleeps: a collective that
// sleeps at every call (ranks that outnumber the cores) would make one
// each time.
var sleepTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// stopped says whether a wait for target is to stop: stop says so, and
// the count has not reached target since it was last looked at. A member
// may arrive and then leave (stop then says it is gone) between that look
// and stop's: the call it arrived at is complete all the same.
func (ch *Channel) stopped(target uint32, stop func() bool) bool {
	return stop != nil && stop() && int32(atomic.LoadUint32(ch.count())-target) < 0
}

// futexWakeAll wakes every waiter on addr.
func futexWakeAll(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(^uint32(0)>>1), 0, 0, 0)
}
