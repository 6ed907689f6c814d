//go:build linux

package shm

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An Endpoint is one local rank's view of a segment: the rings it sends on,
// the rings it receives from, and its doorbell. Send may be called from one
// goroutine at a time, and Recv and Wait from one goroutine at a time (the
// same or another); Close when no call is under way.
type Endpoint struct {
	mem  []byte
	area *area // the channel area, mapped apart (coll.go)
	l    layout
	rank int
	out  []writer // by destination; out[rank] unused
	in   []reader // by source; in[rank] unused
	next int      // where Recv's next scan starts, for fairness

	// full, by destination: 1 + the receiver's head when Send found its
	// ring full, 0 otherwise; Wait watches those heads. Send sets it and
	// Wait clears it, perhaps from two goroutines: atomics.
	full  []atomic.Uint64
	nfull atomic.Int32
	kick  atomic.Bool // Wake was called: the next ready says so

	yields atomic.Int64 // how often Wait's spins yielded the core (tests)

	b     *bell       // nil: sleep on the doorbell's futex (bell.go)
	sleep *time.Timer // Wait's timeout on the bell
}

// Open maps the segment at path as local rank rank, and writes its pid in
// the rank's doorbell line (PeerPID). The file must be this user's, mode
// 0600, and its header must agree with its size; no other process may have
// the rank open.
func Open(path string, rank int) (*Endpoint, error) {
	mem, a, l, err := mapSegment(path)
	if err != nil {
		return nil, err
	}
	if rank < 0 || rank >= l.n {
		unix.Munmap(mem)
		return nil, fmt.Errorf("shm: open %s: rank %d, but the segment has %d local ranks", path, rank, l.n)
	}
	e := &Endpoint{mem: mem, area: a, l: l, rank: rank, out: make([]writer, l.n), in: make([]reader, l.n), full: make([]atomic.Uint64, l.n)}
	// A ring has one writer and one reader: a second process as the same
	// rank would break both.
	if !atomic.CompareAndSwapUint32(e.pidp(rank), 0, uint32(os.Getpid())) {
		pid := e.PeerPID(rank)
		unix.Munmap(mem)
		return nil, fmt.Errorf("shm: open %s: local rank %d is open already, by pid %d", path, rank, pid)
	}
	for p := range l.n {
		if p == rank {
			continue
		}
		e.out[p].ring = e.ringOf(rank, p)
		e.in[p].ring = e.ringOf(p, rank)
		e.in[p].src = p
	}
	if !noBell {
		e.b, _ = openBell(path, rank, l.n) // without: the futex
	}
	return e, nil
}

// noBell makes Open leave the bell out, for the tests of the futex.
var noBell bool

func (e *Endpoint) pidp(r int) *uint32 {
	return (*uint32)(unsafe.Pointer(&e.mem[e.l.bell(r)+bellPID]))
}

// PeerPID is the process id that local rank r wrote when it opened the
// segment, 0 if it has not or has closed it: a rank checks it against the
// pid its peer announced elsewhere (the start-up handshake) before it
// takes the shared-memory path to it. It is read from the segment: a
// claim, not a proof.
func (e *Endpoint) PeerPID(r int) int {
	if r < 0 || r >= e.l.n {
		return 0
	}
	return int(atomic.LoadUint32(e.pidp(r)))
}

func (e *Endpoint) ringOf(src, dst int) ring {
	off := e.l.ringOff(src, dst)
	return newRing(e.mem[off:off+ctlSize], e.mem[off+ctlSize:off+e.l.stride():off+e.l.stride()])
}

// Rank is this endpoint's local rank.
func (e *Endpoint) Rank() int { return e.rank }

// Size is the number of local ranks the segment was made for.
func (e *Endpoint) Size() int { return e.l.n }

// MaxFrame is the largest frame Send takes.
func (e *Endpoint) MaxFrame() int { return e.l.ring - frameWord }

func (e *Endpoint) bell(r int) *uint32 {
	return (*uint32)(unsafe.Pointer(&e.mem[e.l.bell(r)]))
}

// Send puts one frame, hdr then payload, of stream stream (a byte that
// Recv gives back) on the ring to local rank dst, and rings dst's doorbell
// if dst sleeps. It never blocks: a full ring gives ErrFull (retry after
// Wait), a frame larger than MaxFrame ErrTooBig. The frame is copied: Send
// keeps neither slice.
func (e *Endpoint) Send(dst int, stream byte, hdr, payload []byte) error {
	if dst < 0 || dst >= e.l.n || dst == e.rank {
		return fmt.Errorf("shm: send from local rank %d to %d: no such peer (%d local ranks)", e.rank, dst, e.l.n)
	}
	w := &e.out[dst]
	if err := w.write(stream, hdr, payload); err != nil {
		if err == ErrFull && e.full[dst].Swap(w.head+1) == 0 {
			e.nfull.Add(1)
		}
		return err
	}
	e.ring(dst)
	return nil
}

// ring wakes local rank r if its doorbell is armed: the one system call a
// sender makes, and only towards a sleeping receiver; the word says how.
func (e *Endpoint) ring(r int) {
	b := e.bell(r)
	if atomic.LoadUint32(b) == 0 {
		return
	}
	switch atomic.SwapUint32(b, 0) {
	case armFutex:
		futexWake(b)
	case armBell:
		if e.b != nil {
			e.b.ring(r, e.rank)
		}
	}
}

// A Frame is what Recv took from a ring: its sender's local rank (the ring
// it came from), its stream, and a copy of its bytes.
type Frame struct {
	Src    int
	Stream byte
	Data   []byte
}

// Recv appends the next frame from any local rank to buf[:0]. ok is false
// when no ring holds a frame. A corrupt ring gives a *CorruptError naming
// its sender, once; the ring is ignored from then on. f.Data is a copy:
// nothing in it changes after Recv returns.
func (e *Endpoint) Recv(buf []byte) (f Frame, ok bool, err error) {
	for i := range e.l.n {
		p := (e.next + i) % e.l.n
		if p == e.rank {
			continue
		}
		data, stream, ok, wake, err := e.in[p].read(buf)
		if err != nil {
			return Frame{Src: p}, false, err
		}
		if !ok {
			continue
		}
		if wake {
			e.ring(p)
		}
		e.next = p + 1
		return Frame{Src: p, Stream: stream, Data: data}, true, nil
	}
	return Frame{Src: -1}, false, nil
}

// Wake makes a Wait under way in another goroutine of this process return
// (or the next one, if none is): for a poller that is told to stop.
func (e *Endpoint) Wake() {
	e.kick.Store(true)
	e.ring(e.rank)
}

// ready reports whether a ring holds a frame for this rank, or a ring that
// was full has had a frame taken since, or Wake was called.
func (e *Endpoint) ready() bool {
	if e.kick.Load() && e.kick.CompareAndSwap(true, false) {
		return true
	}
	for p := range e.in {
		if p != e.rank && e.in[p].pending() {
			return true
		}
	}
	if e.nfull.Load() > 0 {
		for p := range e.full {
			f := e.full[p].Load()
			if f != 0 && atomic.LoadUint64(e.out[p].headp()) != f-1 && e.full[p].CompareAndSwap(f, 0) {
				e.nfull.Add(-1)
				return true
			}
		}
	}
	return false
}

// Wait returns when a frame may be waiting for Recv, or a ring that Send
// found full may have room, or after about timeout. It first polls the
// rings as spin says (a spin is spent on each call; see Spin), then
// sleeps on its doorbell: it arms it, checks the rings once more, and
// waits on it. It may return early and for nothing (a signal): callers
// loop.
func (e *Endpoint) Wait(spin Spin, timeout time.Duration) error {
	return e.WaitUnless(spin, timeout, nil)
}

// WaitUnless is Wait that also returns, before it sleeps, once unless
// reports true: it asks unless between polls of its spin, and once before
// it sleeps (a nil unless is never true). A caller that has another way to
// learn of frames (another goroutine taking them for a while) uses it to
// stop spinning, and to sleep elsewhere than on the doorbell, whose
// ringing costs every sender a system call.
func (e *Endpoint) WaitUnless(spin Spin, timeout time.Duration, unless func() bool) error {
	if e.ready() {
		return nil
	}
	if spin.For > 0 {
		s := spin.Start()
		for {
			if e.ready() {
				e.yields.Add(int64(s.yields))
				return nil
			}
			if s.looks%spinCheck == spinCheck-1 && unless != nil && unless() {
				e.yields.Add(int64(s.yields))
				return nil
			}
			if !s.Next() {
				break
			}
		}
		e.yields.Add(int64(s.yields))
	}
	if unless != nil && unless() {
		return nil
	}
	b := e.bell(e.rank)
	if e.b != nil {
		woken := e.b.next()
		atomic.StoreUint32(b, armBell) // senders wake this rank from now on
		if e.ready() {
			atomic.StoreUint32(b, 0)
			return nil
		}
		if e.sleep == nil {
			e.sleep = time.NewTimer(timeout)
		} else {
			e.sleep.Reset(timeout)
		}
		select {
		case <-woken:
		case <-e.sleep.C:
		}
		e.sleep.Stop()
		atomic.StoreUint32(b, 0)
		return nil
	}
	atomic.StoreUint32(b, armFutex)
	if e.ready() {
		atomic.StoreUint32(b, 0)
		return nil
	}
	err := futexWait(b, armFutex, timeout)
	atomic.StoreUint32(b, 0)
	return err
}

// Yield gives this thread's core to another process that waits for one,
// if any does (sched_yield): a spin calls it between its looks. It is a
// raw system call, which the runtime does not see: it never blocks, but
// on a busy host it returns only once the others have had their turn, and
// a system call that lasts makes the runtime hand this thread's P to
// another thread and take it back after.
func Yield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// A Spin says how a waiter looks for what it waits for before it sleeps:
// for how long in all (For), and for how much of that it keeps its core
// (Pure), looking without a break but for this process's goroutines
// (runtime.Gosched, now and then); past Pure it also yields its core to
// the host's other processes between looks (Yield). Where the host has a
// core for each rank, the rank waited for runs meanwhile, and a yield (a
// system call, and the scheduler) only delays the look that sees it come:
// Open MPI and MPICH spin so. Where the host has more ranks than cores,
// Pure is 0: the rank waited for may need this very core.
type Spin struct{ For, Pure time.Duration }

// Spinning is the state of one spin (Spin.Start): the spinner calls Next
// after each look that found nothing.
type Spinning struct {
	Spin
	start  time.Time
	looks  int
	yields int           // how often it yielded its core
	sched  time.Duration // when it last let this process's goroutines run
}

// spinCheck is how many looks a spin makes between two looks at the clock
// (a clock read costs about as much as several looks at a word).
const spinCheck = 16

// spinSched is how often a pure spin lets this process's other goroutines
// run (runtime.Gosched): where a rank has one P, they wait for it.
const spinSched = 2 * time.Microsecond

// Start starts a spin. Its clock starts at the first look at it
// (spinCheck looks in): a wait that ends sooner, as most do where the
// ranks keep pace, reads no clock.
func (s Spin) Start() Spinning { return Spinning{Spin: s} }

// Yields is how often the spin yielded its core.
func (s *Spinning) Yields() int { return s.yields }

// Next counts a look; it reports false once the spin is over, and
// otherwise yields as the spin says.
func (s *Spinning) Next() bool {
	s.looks++
	if s.looks%spinCheck != 0 {
		return true
	}
	if s.start.IsZero() {
		s.start = time.Now()
	}
	d := time.Since(s.start)
	switch {
	case d >= s.For:
		return false
	case d >= s.Pure:
		runtime.Gosched() // this process's goroutines first,
		Yield()           // then the host's processes
		s.yields++
	case d-s.sched >= spinSched:
		runtime.Gosched() // this process's goroutines, now and then
		s.sched = d
	}
	return true
}

// Close unmaps the segment. The endpoint must not be used after.
func (e *Endpoint) Close() error {
	if e.mem == nil {
		return nil
	}
	atomic.CompareAndSwapUint32(e.pidp(e.rank), uint32(os.Getpid()), 0)
	for p := range e.in {
		e.in[p].ring, e.out[p].ring = ring{}, ring{}
	}
	if e.b != nil {
		e.b.close()
	}
	mem := e.mem
	e.mem, e.area = nil, nil // channels keep the area mapped while they live
	return unix.Munmap(mem)
}

// The futex operations, on a word in a shared mapping: without
// FUTEX_PRIVATE_FLAG, so that the kernel keys the wait on the page, not on
// this process's address space.
const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

// futexWait sleeps while *addr holds val, at most d. A wake, a timeout, a
// changed word or a signal all return nil.
func futexWait(addr *uint32, val uint32, d time.Duration) error {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.ETIMEDOUT, unix.EINTR:
		return nil
	}
	return fmt.Errorf("shm: futex wait: %w", errno)
}

// futexWake wakes one waiter on addr.
func futexWake(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, 1, 0, 0, 0)
}
