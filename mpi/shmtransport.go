//go:build linux

package mpi

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/shm"
)

// shmTransport carries the frames between the ranks of one host through the
// segment the launcher made for them (internal/shm), and every other frame
// over NATS: a natsTransport that it wraps, which also stays the control
// plane (the start-up handshake, aborts, a lost connection). Which path a
// peer's frames take is fixed at start, before any engine frame is sent, so
// that one sender's frames to one peer stay one ordered stream.
//
// A peer takes the ring when both announced the same segment (its
// identity: this host and pid namespace, the file) at different local
// ranks, and the pid it announced is the one that its local rank wrote in
// the segment when it opened it (or 0: it closed it since); both sides of a
// pair read the same table of hellos and the same segment, so they reach
// the same decision. Two ranks
// of different hosts (or of one host's different pid namespaces) announce
// different segments, and never use shared memory with each other.
//
// SendAll goes to each rank in turn when any peer takes the ring
// (multicast reports false): the rings carry one stream per pair, so the
// bye's count of multicast frames (peerlost.go) stays that of the bus.
//
// One goroutine (poll) drains the rings: it hands each frame to the
// engine, sends the frames that a full ring made it queue, and sleeps on
// the rank's doorbell when there is nothing to do, spinning first (briefly
// where the host has a core for each local rank; longer, yielding the core
// between looks, where it has not: shmSpinShared). When idle it also checks, every
// shmLiveness, that its ring peers' processes still run: one SIGKILLed says
// no bye, and what waits for it must still fail.
//
// A goroutine about to block in Wait first takes the frames itself for up
// to the same spin (drain), so that the message it waits for wakes no
// parked goroutine: the hand-off from poll to the waiter (a thread woken
// by a system call) was most of a small message's latency. While a waiter
// drains, poll neither spins nor sleeps on the doorbell (whose ringing
// costs each sender a system call), but dozes: it looks again after
// shmDoze, or when a waiter leaves without its message.
type shmTransport struct {
	e    *engine
	nats *natsTransport
	ep   *shm.Endpoint // nil: no segment (every frame goes over NATS)

	spin shm.Spin      // how poll and drain spin before they sleep
	wait time.Duration // the longest it sleeps at once

	routes atomic.Pointer[shmRoutes] // set once at start; nil before: the bus

	smu   sync.Mutex // guards ep.Send and queue
	queue [][][]byte // by world rank: frames (stream byte, header, payload) waiting for room in the ring
	nq    atomic.Int64

	rmu      sync.Mutex    // held while taking frames from the rings: by poll, or by a waiter in drain
	draining atomic.Int32  // waiters in drain now
	yields   atomic.Int64  // how often drain yielded the core (tests)
	kick     chan struct{} // a waiter left drain without its message: poll takes over at once (cap 1)

	stop atomic.Bool
	done chan struct{} // closed when poll returns
}

// shmRoutes is the path to each peer, fixed at start.
type shmRoutes struct {
	local []int    // by world rank: its local rank when its frames take the ring, else -1
	world []int    // by local rank: the world rank whose ring it is, else -1
	where []string // by world rank: what its ring is called in errors
	any   bool     // some peer takes the ring
}

// shmStream is the stream byte of an engine frame on a ring: a rank's
// inbox. (Multicast frames never take a ring.)
const shmStream = 0

// shmHello is what a rank announces of its segment at start-up: the
// segment's identity (shmSegmentID), the local rank it opened it as, and
// the pid it wrote there; all zero when it opened none.
type shmHello struct {
	seg   uint64
	local uint32
	pid   uint32
}

// shmHelloLen is shmHello's size in a hello.
const shmHelloLen = 16

func appendShmHello(b []byte, h shmHello) []byte {
	b = append(b, byte(h.seg), byte(h.seg>>8), byte(h.seg>>16), byte(h.seg>>24),
		byte(h.seg>>32), byte(h.seg>>40), byte(h.seg>>48), byte(h.seg>>56))
	b = append(b, byte(h.local), byte(h.local>>8), byte(h.local>>16), byte(h.local>>24))
	return append(b, byte(h.pid), byte(h.pid>>8), byte(h.pid>>16), byte(h.pid>>24))
}

func parseShmHello(b []byte) shmHello {
	u32 := func(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24 }
	return shmHello{seg: uint64(u32(b)) | uint64(u32(b[4:]))<<32, local: u32(b[8:]), pid: u32(b[12:])}
}

// valid reports whether the fields are all set (with a local rank a
// segment can have) or all zero.
func (h shmHello) valid() bool {
	if h.seg == 0 {
		return h.local == 0 && h.pid == 0
	}
	return h.pid != 0 && h.local < shm.MaxRanks
}

// shmSegmentID names the segment at path as this host and pid namespace
// see it: two ranks with the same identity mapped the same file. 0 when
// it cannot tell (no shared memory then).
func shmSegmentID(path string) uint64 {
	host := hostIdentity()
	fi, err := os.Stat(path)
	if host == 0 || err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%x %d %d %s", host, st.Dev, st.Ino, path)
	return h.Sum64() | 1
}

func newShmTransport(e *engine) transport {
	return &shmTransport{e: e, nats: newNATSTransport(e), done: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// multicast: a publish to every rank goes through the bus. The engine
// does not multicast where ranks share a segment (engine.multicast).
func (t *shmTransport) multicast() bool { return t.nats.multicast() }

func (t *shmTransport) start(ctx context.Context) error {
	e := t.e
	if err := t.nats.connect(ctx); err != nil {
		close(t.done)
		return err
	}
	if err := t.open(); err != nil {
		// The bus is the fallback: this rank announces no segment, so
		// no peer takes a ring to it.
		t.ep = nil
		e.shmOwn = shmHello{}
	}
	if err := t.nats.handshake(ctx); err != nil {
		close(t.done)
		return err
	}
	if t.ep == nil {
		close(t.done)
		return nil
	}
	r := t.decide()
	if !r.any {
		t.ep.Close()
		t.ep = nil
		close(t.done)
		return nil
	}
	t.queue = make([][][]byte, e.size)
	t.routes.Store(r)
	go t.poll(r)
	return nil
}

// open maps the segment as this rank's local rank and sets what the rank
// announces of it. The frame limits shrink to what a ring holds.
func (t *shmTransport) open() error {
	e, o := t.e, t.e.opts
	seg := shmSegmentID(o.segment)
	if seg == 0 {
		return errors.New("no segment identity")
	}
	ep, err := shm.Open(o.segment, o.localRank)
	if err != nil {
		return err
	}
	t.ep = ep
	if limit := ep.MaxFrame() - hdrLen; limit < e.chunk {
		e.setLimits(limit)
	}
	e.shmOwn = shmHello{seg: seg, local: uint32(o.localRank), pid: uint32(os.Getpid())}
	t.wait = 100 * time.Millisecond
	// The host's cores, not this process's GOMAXPROCS: gorun gives each
	// rank its share of them (GOMAXPROCS=1 for 2 ranks on 2 cores), and
	// one spinning goroutine a rank then leaves each a core.
	t.spin = shm.Spin{For: shmSpin, Pure: shmSpin}
	if ep.Size() > runtime.NumCPU() {
		t.spin = shm.Spin{For: shmSpinShared}
	}
	if o.shmSpin != nil {
		t.spin.For = *o.shmSpin
		t.spin.Pure = min(t.spin.Pure, t.spin.For)
	}
	if o.shmWait > 0 {
		t.wait = o.shmWait
	}
	return nil
}

// decide fixes each peer's path from the table of hellos.
func (t *shmTransport) decide() *shmRoutes {
	e := t.e
	own := e.shmOwn
	n := t.ep.Size()
	r := &shmRoutes{local: make([]int, e.size), world: make([]int, n), where: make([]string, e.size)}
	claims := make([]int, n)
	for _, h := range e.peerInfo {
		if h.shm.seg == own.seg && int(h.shm.local) < n {
			claims[h.shm.local]++
		}
	}
	for i := range r.world {
		r.world[i] = -1
	}
	for w, h := range e.peerInfo {
		r.local[w] = -1
		l := int(h.shm.local)
		// The pid in the segment is the announced one, or 0: the peer
		// (which announces a segment only once it has opened it) has
		// closed it since, as a rank that closes its world at once may
		// before this rank decides. It decided for the ring too, and said
		// its bye there: this rank must read that ring (and a check of
		// the announced pid finds it gone).
		if pid := t.ep.PeerPID(l); w == e.rank || h.shm.seg != own.seg || l >= n || l == t.ep.Rank() || claims[l] != 1 ||
			pid != int(h.shm.pid) && pid != 0 {
			continue
		}
		r.local[w], r.world[l], r.any = l, w, true
		r.where[w] = "the shared-memory ring from rank " + strconv.Itoa(w)
	}
	return r
}

func (t *shmTransport) send(dst int, h header, data []byte) error {
	r := t.routes.Load()
	if dst == toAll || r == nil || r.local[dst] < 0 {
		return t.nats.send(dst, h, data)
	}
	var hb [hdrLen]byte
	putHeader(hb[:], h)
	l := r.local[dst]
	t.e.paths.ringFrames.Add(1)
	t.e.paths.ringBytes.Add(int64(hdrLen + len(data)))
	t.smu.Lock()
	defer t.smu.Unlock()
	if len(t.queue[dst]) == 0 {
		err := t.ep.Send(l, shmStream, hb[:], data)
		if !errors.Is(err, shm.ErrFull) {
			return err
		}
	}
	// The ring is full, or frames wait before this one: queue it, in
	// order, for poll to send when the receiver makes room. The eager
	// credit bounds what waits.
	f := make([]byte, 1+hdrLen+len(data))
	f[0] = shmStream
	copy(f[1:], hb[:])
	copy(f[1+hdrLen:], data)
	t.queue[dst] = append(t.queue[dst], f)
	t.nq.Add(1)
	return nil
}

// flush sends what waits in the queues, as far as the rings have room.
func (t *shmTransport) flush(r *shmRoutes) error {
	t.smu.Lock()
	defer t.smu.Unlock()
	for dst, q := range t.queue {
		for len(q) > 0 {
			err := t.ep.Send(r.local[dst], q[0][0], q[0][1:1+hdrLen], q[0][1+hdrLen:])
			if errors.Is(err, shm.ErrFull) {
				break
			}
			if err != nil {
				return err
			}
			q[0] = nil
			q = q[1:]
			t.nq.Add(-1)
		}
		if len(q) == 0 {
			q = nil
		}
		t.queue[dst] = q
	}
	return nil
}

// How long a rank looks for work before it sleeps on its doorbell: on a
// host with a core for each local rank, shmSpin, keeping its core (the
// rank it waits for has one: a yield, a system call, would only delay the
// look that sees it); on one with more local ranks than cores,
// shmSpinShared, yielding the core to the others between looks (as Open
// MPI does with mpi_yield_when_idle, which it sets when oversubscribed).
// A sleep and a wake-up cost system calls and thread switches in both
// ranks; where the ranks take turns on the cores, a waiting rank that
// yields lets the one it waits for run at once and sees its message at its
// next turn. Measured (1-D stencil, 1000 points a rank, 8 ranks on 2
// cores, sleeping on the futex then): 330-440 us a step sleeping at once,
// 115-125 with shmSpinShared (Open MPI: 42-52). With 2 ranks of 100,000
// points each on 2 cores, each waits about as long as its neighbour's
// compute differs from its own, often more than 20 us: a 100 us spin
// (Open MPI spins without end) took 0.75-0.93x a 20 us one's step (two
// series of 8 and 10 alternated rounds; no spin at all, 1.11x).
const (
	shmSpin       = 100 * time.Microsecond
	shmSpinShared = 200 * time.Microsecond
)

// shmLiveness is how often an idle poller checks that the processes of
// its ring peers still run.
const shmLiveness = 100 * time.Millisecond

// poll drains the rings until close, handing each frame to the engine.
func (t *shmTransport) poll(r *shmRoutes) {
	defer close(t.done)
	e := t.e
	dead := make([]bool, len(r.local))
	check := time.Now().Add(shmLiveness)
	handed := false // a frame went to the engine since the last wait
	drained := func() bool { return t.draining.Load() > 0 }
	doze := time.NewTimer(shmDoze)
	defer doze.Stop()
	for !t.stop.Load() {
		if t.nq.Load() > 0 {
			if err := t.flush(r); err != nil {
				e.mu.Lock()
				e.lose(err)
				e.mu.Unlock()
				return
			}
		}
		ok, err := t.take(r)
		if err != nil {
			continue
		}
		if !ok {
			if handed {
				// The frames may have woken a goroutine (a Recv) that
				// waits for this P: let it run now, before the spin,
				// which would hold the P until its next yield.
				handed = false
				runtime.Gosched()
				continue
			}
			if now := time.Now(); now.After(check) {
				t.checkPeers(r, dead)
				check = now.Add(shmLiveness)
			}
			if drained() {
				doze.Reset(shmDoze)
				select {
				case <-doze.C:
				case <-t.kick:
				}
				continue
			}
			if err := t.ep.WaitUnless(t.spin, t.wait, drained); err != nil {
				e.mu.Lock()
				e.lose(err)
				e.mu.Unlock()
				return
			}
			continue
		}
		handed = true
	}
}

// shmDoze is how long poll leaves the rings to a waiter that drains them
// before it looks again.
const shmDoze = 50 * time.Microsecond

// take hands the next frame from the rings, if one waits, to the engine.
// A ring that broke its rules fails the job (err).
func (t *shmTransport) take(r *shmRoutes) (ok bool, err error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	// A fresh buffer each frame: the engine keeps an eager message's
	// bytes.
	f, ok, err := t.ep.Recv(nil)
	switch {
	case err != nil:
		t.corrupt(r, f.Src, err)
	case ok:
		t.decode(r, f)
	}
	return ok, err
}

// drain takes frames from the rings in the goroutine of a waiter about to
// block, until done is closed (it reports true) or the spin passes (one
// look when poll does not spin either). It does nothing while poll (or
// another waiter) takes frames.
func (t *shmTransport) drain(done <-chan struct{}) bool {
	r := t.routes.Load()
	if r == nil || !t.rmu.TryLock() {
		return false
	}
	t.draining.Add(1)
	got := false
	s := t.spin.Start()
	for !t.stop.Load() {
		f, ok, err := t.ep.Recv(nil)
		if err != nil {
			t.corrupt(r, f.Src, err)
			break
		}
		if ok {
			t.decode(r, f)
		}
		select {
		case <-done:
			got = true
		default:
		}
		if got || !ok && (t.spin.For == 0 || !s.Next()) {
			break
		}
	}
	t.yields.Add(int64(s.Yields()))
	t.rmu.Unlock()
	if t.draining.Add(-1) == 0 && !got {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
	return got
}

// checkPeers finds the ring peers whose process is gone (SIGKILLed: it
// said no bye), takes what they wrote before they died, and tells the
// engine that they are gone, so that what waits for them fails. Under
// gorun the job ends anyway; without it (mpitest, a launcher of one's own)
// nothing else would tell.
func (t *shmTransport) checkPeers(r *shmRoutes, dead []bool) {
	for w, l := range r.local {
		if l < 0 || dead[w] {
			continue
		}
		// The pid the peer announced and wrote in the segment (decide
		// checked that they agree), in this rank's pid namespace.
		if err := syscall.Kill(int(t.e.peerInfo[w].shm.pid), 0); err != syscall.ESRCH {
			continue
		}
		dead[w] = true
		for {
			ok, err := t.take(r)
			if err == nil && !ok {
				break
			}
		}
		t.e.peerDied(w)
	}
}

// corrupt fails the job on a ring that broke the ring's rules: a protocol
// error naming the rank that wrote it, as for a bad frame from the bus.
func (t *shmTransport) corrupt(r *shmRoutes, local int, err error) {
	where := "the shared-memory ring from local rank " + strconv.Itoa(local)
	if local >= 0 && local < len(r.world) && r.world[local] >= 0 {
		where = r.where[r.world[local]]
	}
	t.e.reject(where, "ring", "%v", err)
}

// decode checks one frame from a ring and hands it to the engine. Its
// sender is the ring it came from; everything in it is checked as a
// frame from the bus is.
func (t *shmTransport) decode(r *shmRoutes, f shm.Frame) {
	e := t.e
	if f.Src < 0 || f.Src >= len(r.world) || r.world[f.Src] < 0 {
		// A local rank that is no peer of this one on the rings (its
		// hello did not match): nothing of the job comes from it.
		e.drops.Add(1)
		return
	}
	src := r.world[f.Src]
	where := r.where[src]
	if f.Stream != shmStream {
		e.reject(where, "stream", "stream %d, want %d", f.Stream, shmStream)
		return
	}
	h, err := parseHeader(f.Data)
	switch {
	case err != nil:
		e.reject(where, "length", "%d bytes, shorter than the %d-byte header", len(f.Data), hdrLen)
	case h.kind != kEager && h.kind != kRTS && h.kind != kChunk && len(f.Data) != hdrLen:
		e.reject(where, "length", "a kind %d frame of %d bytes, want %d", h.kind, len(f.Data), hdrLen)
	default:
		e.onFrame(where, src, false, h, f.Data[hdrLen:])
	}
}

// waiting reports whether frames wait in a queue for a peer that still
// has the segment open (one that closed its world will never make room).
func (t *shmTransport) waiting(r *shmRoutes) bool {
	if t.nq.Load() == 0 {
		return false
	}
	t.smu.Lock()
	defer t.smu.Unlock()
	for dst, q := range t.queue {
		if len(q) > 0 && t.ep.PeerPID(r.local[dst]) != 0 {
			return true
		}
	}
	return false
}

func (t *shmTransport) abort(code int, d time.Duration) { t.nats.abort(code, d) }

func (t *shmTransport) close(d time.Duration) {
	if r := t.routes.Load(); r != nil && d > 0 {
		// What waits in the queues leaves as the receivers make room.
		deadline := time.Now().Add(d)
		for t.waiting(r) && time.Now().Before(deadline) && !t.stop.Load() {
			select {
			case <-t.done:
				deadline = time.Now()
			case <-time.After(time.Millisecond):
			}
		}
	}
	t.nats.close(d)
	t.stop.Store(true)
	if t.ep != nil {
		t.ep.Wake()
	}
	<-t.done
	if t.ep != nil {
		// Only now: the segment is unmapped, and poll touches it no
		// more; a waiter in drain leaves it (stop), and none starts.
		t.rmu.Lock()
		t.ep.Close()
		t.rmu.Unlock()
	}
}
