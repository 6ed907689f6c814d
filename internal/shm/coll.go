//go:build linux

package shm

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Channels: the flags that collectives of one communicator run on, where
// every rank of it is on this segment. A barrier there costs each rank an
// atomic add and a look at a counter, and no message.
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
//	  +68    sleepers: how many members sleep on count (futex)
//	  +128   one 8-byte cell per local rank: the word of its last call
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

func alignUp(x, a int) int { return (x + a - 1) / a * a }

func (l layout) chanStride() int { return lineSize + alignUp(8*l.n, lineSize) }
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
	base  int // the channel's offset in a.mem
	local int // this rank's cell
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
			return &Channel{a: a, base: base, local: e.rank}, true
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

// Arrive records word as this rank's last call and counts it. target is
// what the count reaches once every member has arrived at this call (the
// count wraps at 2^32: members*calls, as uint32): the rank whose arrival
// reaches it wakes the members asleep in Wait.
func (ch *Channel) Arrive(word uint64, target uint32) {
	atomic.StoreUint64(ch.cell(ch.local), word)
	if atomic.AddUint32(ch.count(), 1) == target && atomic.LoadUint32(ch.sleepers()) > 0 {
		futexWakeAll(ch.count())
	}
}

// Cell is the word local rank local last arrived with.
func (ch *Channel) Cell(local int) uint64 {
	if local < 0 || local >= ch.a.l.n {
		return 0
	}
	return atomic.LoadUint64(ch.cell(local))
}

// ErrStopped is Wait's answer when stop said to stop.
var ErrStopped = errors.New("shm: channel wait stopped")

// Wait returns once the count has reached target (every member arrived),
// spinning for up to spin (yielding the core between looks), then sleeping
// on the count; every tick it asks stop, and returns ErrStopped if stop
// says so.
func (ch *Channel) Wait(target uint32, spin, tick time.Duration, stop func() bool) error {
	reached := func(c uint32) bool { return int32(c-target) >= 0 }
	cnt := ch.count()
	if reached(atomic.LoadUint32(cnt)) {
		return nil
	}
	if spin > 0 {
		start := time.Now()
		for i := 1; ; i++ {
			if reached(atomic.LoadUint32(cnt)) {
				return nil
			}
			if i%16 == 0 {
				if time.Since(start) >= spin {
					break
				}
				runtime.Gosched()
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
		}
	}
	for {
		if stop != nil && stop() {
			return ErrStopped
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

// futexWakeAll wakes every waiter on addr.
func futexWakeAll(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(^uint32(0)>>1), 0, 0, 0)
}
