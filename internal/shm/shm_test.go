//go:build linux

package shm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// segment creates a segment in Dir for n ranks with rings of ringBytes,
// removed when the test ends.
func segment(t testing.TB, n, ringBytes int) string {
	t.Helper()
	path, err := NewPath("")
	if err != nil {
		t.Fatal(err)
	}
	if err := CreateRing(path, n, ringBytes); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Remove(path) })
	return path
}

// open opens path as rank, closed when the test ends.
func open(t testing.TB, path string, rank int) *Endpoint {
	t.Helper()
	e, err := Open(path, rank)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// content is frame i from src: size bytes that tell them apart.
func content(src, i, size int) []byte {
	b := make([]byte, size)
	for k := range b {
		b[k] = byte(src*31 + i*7 + k*13 + k>>8)
	}
	return b
}

// sendParts sends frame as a header part (up to 40 bytes, like the
// engine's) and a payload part, of stream len(frame) modulo 256.
func sendParts(e *Endpoint, dst int, frame []byte) error {
	h := min(len(frame), 40)
	return e.Send(dst, byte(len(frame)), frame[:h], frame[h:])
}

func TestCreateOpen(t *testing.T) {
	path := segment(t, 3, 4096)
	if !strings.HasPrefix(path, Dir+"/"+prefix) || len(path) < len(Dir)+len(prefix)+33 {
		t.Errorf("path %q: want %s/%s<pid>-<32 hex digits>", path, Dir, prefix)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := CreateRing(path, 3, 4096); err == nil {
		t.Error("creating an existing segment succeeded")
	}
	e := open(t, path, 2)
	if e.Rank() != 2 || e.Size() != 3 || e.MaxFrame() != 4096-8 {
		t.Errorf("rank %d size %d max frame %d", e.Rank(), e.Size(), e.MaxFrame())
	}
	if e.PeerPID(2) != os.Getpid() || e.PeerPID(0) != 0 || e.PeerPID(7) != 0 {
		t.Errorf("pids %d %d %d, want this process's, 0 (not opened), 0 (no such rank)", e.PeerPID(2), e.PeerPID(0), e.PeerPID(7))
	}
	e0, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.PeerPID(0) != os.Getpid() {
		t.Errorf("rank 0's pid %d after it opened", e.PeerPID(0))
	}
	if _, err := Open(path, 0); err == nil || !strings.Contains(err.Error(), "open already") {
		t.Errorf("opening rank 0 twice: %v", err)
	}
	e0.Close()
	if e.PeerPID(0) != 0 {
		t.Errorf("rank 0's pid %d after it closed", e.PeerPID(0))
	}
	for _, rank := range []int{-1, 3} {
		if _, err := Open(path, rank); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rank %d", rank)) {
			t.Errorf("Open rank %d: %v", rank, err)
		}
	}
	if err := e.Send(2, 0, nil, []byte("x")); err == nil {
		t.Error("a send to itself succeeded")
	}
	if err := e.Send(5, 0, nil, []byte("x")); err == nil {
		t.Error("a send to rank 5 of 3 succeeded")
	}
	for _, bad := range []struct{ n, ring int }{{0, 4096}, {MaxRanks + 1, 4096}, {2, 1000}, {2, 512}, {2, MaxRingBytes * 2}} {
		p, _ := NewPath("")
		if err := CreateRing(p, bad.n, bad.ring); err == nil {
			Remove(p)
			t.Errorf("CreateRing(%d ranks, %d bytes) succeeded", bad.n, bad.ring)
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a refused CreateRing left %s", p)
		}
	}
}

// TestOpenRefuses: a file that is open to others, too short, not a
// segment, or whose header disagrees with its size, is refused with an
// error naming the problem.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode, b []byte) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := segment(t, 2, 4096)
	img, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	cut := append([]byte(nil), img[:len(img)-8]...)
	lying := append([]byte(nil), img...)
	lying[hdrRanks] = 200
	cases := []struct{ path, want string }{
		{write("open", 0o644, img), "lets other users in"},
		{write("short", 0o600, img[:64]), "shorter than a header"},
		{write("zeros", 0o600, make([]byte, 4096)), "not a gorun segment"},
		{write("cut", 0o600, cut), "the file has"},
		{write("lying", 0o600, lying), "the file has"},
		{dir, "is a directory"},
		{dir + "/none", "no such file"},
	}
	for _, c := range cases {
		_, err := Open(c.path, 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s): %v, want an error with %q", c.path, err, c.want)
		}
	}
}

// TestEverySizeAcrossTheWrap sends every frame size from 0 to the ring's
// largest, in order, through two mappings of one segment: each arrives
// whole, in order, wherever the wrap cuts it.
func TestEverySizeAcrossTheWrap(t *testing.T) {
	path := segment(t, 2, 1024)
	a, b := open(t, path, 0), open(t, path, 1)
	var buf []byte
	for size := 0; size <= a.MaxFrame(); size++ {
		want := content(0, size, size)
		if err := sendParts(a, 1, want); err != nil {
			t.Fatalf("send of %d bytes: %v", size, err)
		}
		fr, ok, err := b.Recv(buf)
		src, got := fr.Src, fr.Data
		if err != nil || !ok || src != 0 || fr.Stream != byte(size) || !bytes.Equal(got, want) {
			t.Fatalf("frame of %d bytes: from %d, stream %d, ok %v, err %v, equal %v", size, src, fr.Stream, ok, err, bytes.Equal(got, want))
		}
		buf = got
	}
	if a.out[1].tail < 100*1024 {
		t.Errorf("only %d bytes went through a 1 KiB ring: the wrap was hardly tried", a.out[1].tail)
	}
}

// TestFullRing: a full ring refuses a frame with ErrFull and takes it once
// the receiver took one; a frame larger than a ring gets ErrTooBig.
func TestFullRing(t *testing.T) {
	path := segment(t, 2, 1024)
	a, b := open(t, path, 0), open(t, path, 1)
	if err := a.Send(1, 0, nil, make([]byte, a.MaxFrame()+1)); !errors.Is(err, ErrTooBig) {
		t.Errorf("a frame of %d bytes: %v, want ErrTooBig", a.MaxFrame()+1, err)
	}
	sent := 0
	for ; ; sent++ {
		err := sendParts(a, 1, content(0, sent, 100))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if sent != 1024/(8+104) {
		t.Errorf("%d frames of 100 bytes fit a 1 KiB ring, want %d", sent, 1024/(8+104))
	}
	if a.ready() {
		t.Error("Wait would return with the ring full and nothing taken")
	}
	if _, ok, err := b.Recv(nil); !ok || err != nil {
		t.Fatalf("recv: %v %v", ok, err)
	}
	if !a.ready() {
		t.Error("Wait would not return after the receiver made room")
	}
	if err := sendParts(a, 1, content(0, sent, 100)); err != nil {
		t.Fatalf("send after room was made: %v", err)
	}
	for i := 1; i <= sent; i++ {
		fr, ok, err := b.Recv(nil)
		_, got := fr.Src, fr.Data
		if !ok || err != nil || !bytes.Equal(got, content(0, i, 100)) {
			t.Fatalf("frame %d: ok %v err %v", i, ok, err)
		}
	}
	if _, ok, _ := b.Recv(nil); ok {
		t.Error("a frame more than was sent")
	}
}

// TestManySenders: each of three senders' frames reach one receiver in
// the order each sent them, named by the ring they came from, through rings
// that fill (each sender sends all it can before the receiver drains).
func TestManySenders(t *testing.T) {
	const n, frames = 4, 500
	path := segment(t, n, 4096)
	eps := make([]*Endpoint, n)
	for r := range eps {
		eps[r] = open(t, path, r)
	}
	sent, next := make([]int, n), make([]int, n)
	got := 0
	var buf []byte
	for got < (n-1)*frames {
		for s := 1; s < n; s++ {
			for sent[s] < frames {
				err := sendParts(eps[s], 0, content(s, sent[s], sent[s]%300))
				if errors.Is(err, ErrFull) {
					break // the receiver drains below
				}
				if err != nil {
					t.Fatal(err)
				}
				sent[s]++
			}
		}
		for {
			fr, ok, err := eps[0].Recv(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			src, f := fr.Src, fr.Data
			buf = f
			if !bytes.Equal(f, content(src, next[src], next[src]%300)) {
				t.Fatalf("frame %d from %d is not the one sent", next[src], src)
			}
			next[src]++
			got++
		}
	}
}

// TestConcurrentSendRecv: one goroutine sends on an endpoint while another
// receives and waits on it (as a transport's sender and poller do), against
// an echoing peer: every frame comes back, in order (run under -race).
func TestConcurrentSendRecv(t *testing.T) {
	const frames = 3000
	path := segment(t, 2, 1024)
	a, b := open(t, path, 0), open(t, path, 1)
	done := make(chan error, 2)
	go func() { // b echoes
		var buf []byte
		for n := 0; n < frames; {
			fr, ok, err := b.Recv(buf)
			if err != nil {
				done <- err
				return
			}
			if !ok {
				b.Wait(Spin{}, 100*time.Millisecond)
				continue
			}
			buf = fr.Data
			for b.Send(0, fr.Stream, nil, fr.Data) != nil {
				b.Wait(Spin{}, 100*time.Millisecond)
			}
			n++
		}
		done <- nil
	}()
	go func() { // a's sender
		for i := 0; i < frames; {
			if err := sendParts(a, 1, content(0, i, i%200)); errors.Is(err, ErrFull) {
				runtime.Gosched()
				continue
			} else if err != nil {
				done <- err
				return
			}
			i++
		}
		done <- nil
	}()
	var buf []byte
	for n := 0; n < frames; { // a's receiver
		fr, ok, err := a.Recv(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			a.Wait(Spin{}, 100*time.Millisecond)
			continue
		}
		buf = fr.Data
		if !bytes.Equal(fr.Data, content(0, n, n%200)) || fr.Stream != byte(n%200) {
			t.Fatalf("echo %d is not frame %d", n, n)
		}
		n++
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRingRejectsHostileIndex: a writer that sets the tail or a frame's
// length out of range gets a *CorruptError naming it from the reader, once,
// never a panic or a read outside the ring; the other rings go on.
func TestRingRejectsHostileIndex(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(ctl, word []byte, head, tail uint64)
		want  string
	}{
		{"tail beyond a ring", func(ctl, _ []byte, _, tail uint64) { put64(ctl[ctlTail:], tail+2048) }, "not within a ring"},
		{"tail behind the head", func(ctl, _ []byte, head, _ uint64) { put64(ctl[ctlTail:], head-8) }, "not within a ring"},
		{"tail mid-word", func(ctl, _ []byte, _, tail uint64) { put64(ctl[ctlTail:], tail-3) }, "not whole frames"},
		{"length beyond the tail", func(_, word []byte, _, _ uint64) { put32(word, 900) }, "claims 900 bytes"},
		{"length beyond the ring", func(_, word []byte, _, _ uint64) { put32(word, 1<<31) }, "claims 2147483648 bytes"},
		{"sequence out of turn", func(_, word []byte, _, _ uint64) { put32(word[4:], 7) }, "sequence number 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := segment(t, 3, 1024)
			a, b, r := open(t, path, 0), open(t, path, 1), open(t, path, 2)
			// One frame taken, so that the head is not 0; one waiting.
			if err := a.Send(2, 0, nil, make([]byte, 24)); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := r.Recv(nil); !ok || err != nil {
				t.Fatal(ok, err)
			}
			if err := a.Send(2, 0, nil, make([]byte, 24)); err != nil {
				t.Fatal(err)
			}
			ring := &r.in[0]
			head := ring.head
			c.spoil(ring.ctl, ring.data[head&ring.mask:], head, a.out[2].tail)
			if err := b.Send(2, 0, nil, []byte("fine")); err != nil {
				t.Fatal(err)
			}
			var got []string
			for range 4 {
				fr, ok, err := r.Recv(nil)
				src, f := fr.Src, fr.Data
				var ce *CorruptError
				switch {
				case errors.As(err, &ce):
					if ce.Src != 0 || src != 0 || !strings.Contains(err.Error(), c.want) {
						t.Errorf("error %v from %d, want %q from rank 0", err, src, c.want)
					}
					got = append(got, "corrupt")
				case err != nil:
					t.Fatal(err)
				case ok:
					got = append(got, fmt.Sprintf("%d:%q", src, f))
				}
			}
			slices.Sort(got)
			if strings.Join(got, " ") != `1:"fine" corrupt` {
				t.Errorf("received %v, want the corrupt ring once, then rank 1's frame", got)
			}
			if r.ready() {
				t.Error("a corrupt ring still wakes its reader")
			}
		})
	}
}

func put64(b []byte, v uint64) { atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[0])), v) }
func put32(b []byte, v uint32) { atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), v) }

// TestWriterRejectsHostileHead: a receiver's head outside the ring's
// bounds gives the sender an error, not a write out of place.
func TestWriterRejectsHostileHead(t *testing.T) {
	path := segment(t, 2, 1024)
	a, b := open(t, path, 0), open(t, path, 1)
	for a.Send(1, 0, nil, make([]byte, 100)) == nil {
	}
	put64(b.in[0].ctl[ctlHead:], 1<<40)
	if err := a.Send(1, 0, nil, make([]byte, 100)); err == nil || errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "head") {
		t.Errorf("send with the head far ahead: %v", err)
	}
}

// FuzzRingRead gives the reader random bytes as a ring's control block and
// data, and a random head and sequence number (the head a multiple of 8, as
// the reader's own head always is: it lives in the reader's memory, not the
// segment's): it returns frames or an error, never panics, and never
// returns more than the ring holds.
func FuzzRingRead(f *testing.F) {
	f.Add(uint64(0), uint32(0), []byte{})
	// A ring as a writer leaves it: three frames, the last across the end.
	seed := make([]uint64, (ctlSize+64)/8)
	sb := unsafe.Slice((*byte)(unsafe.Pointer(&seed[0])), ctlSize+64)
	w := writer{ring: newRing(sb[:ctlSize], sb[ctlSize:])}
	w.write(1, []byte("header"), []byte("payload"))
	w.write(2, nil, nil)
	put64(sb[ctlHead:], w.tail)
	w.write(3, []byte("across the end of the ring..."), nil)
	f.Add(uint64(0), uint32(0), append([]byte(nil), sb...))
	f.Add(uint64(32), uint32(2), append([]byte(nil), sb...))
	f.Fuzz(func(t *testing.T, head uint64, seq uint32, raw []byte) {
		const size = 64
		mem := make([]uint64, (ctlSize+size)/8) // aligned for the atomics
		b := unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), ctlSize+size)
		copy(b, raw)
		head &^= 7
		r := reader{ring: newRing(b[:ctlSize], b[ctlSize:]), head: head, seq: seq}
		var buf []byte
		for range 20 {
			f, _, ok, _, err := r.read(buf)
			if err != nil || !ok {
				return
			}
			if len(f) > size-frameWord {
				t.Fatalf("a frame of %d bytes from a %d-byte ring", len(f), size)
			}
			buf = f
		}
	})
}

// TestSweep: a segment whose creator is gone is removed; one whose creator
// runs (this process) stays.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	mine, err := NewPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := CreateRing(mine, 2, 1024); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("%s/%s%d-%032x", dir, prefix, cmd.Process.Pid, 1)
	if err := CreateRing(dead, 2, 1024); err != nil {
		t.Fatal(err)
	}
	other := dir + "/unrelated"
	os.WriteFile(other, nil, 0o600)
	gone, err := Sweep(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0] != dead {
		t.Errorf("swept %v, want [%s]", gone, dead)
	}
	for _, p := range []string{mine, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := Remove(mine); err != nil {
		t.Fatal(err)
	}
	if err := Remove(mine); err != nil {
		t.Errorf("removing a removed segment: %v", err)
	}
}

// TestWaitYields: a Wait that spins gives its core away between looks
// (Yield): on a host with more ranks than cores the rank it waits for may
// need that core to send what it waits for.
func TestWaitYields(t *testing.T) {
	path := segment(t, 2, 4096)
	e := open(t, path, 0)
	open(t, path, 1)
	if err := e.Wait(Spin{For: 20 * time.Millisecond}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if e.yields.Load() == 0 {
		t.Fatal("a Wait that spun 20 ms never yielded its core")
	}
}

// TestWaitSleepsOnBell: a Wait asleep on its bell holds no thread in a
// system call (a goroutine parked in Go's network poller), where on its
// doorbell's futex one thread of this process waits in FUTEX_WAIT on the
// doorbell's word: the runtime then gives that thread's P to another
// thread and back at each wake-up, and network I/O of a process whose
// only P sleeps there waits for the runtime's monitor (up to 10 ms).
func TestWaitSleepsOnBell(t *testing.T) {
	for _, futex := range []bool{false, true} {
		noBell = futex
		path := segment(t, 2, 4096)
		e := open(t, path, 0)
		noBell = false
		open(t, path, 1)
		if futex != (e.b == nil) {
			t.Fatalf("futex %v, but the endpoint's bell is %v", futex, e.b)
		}
		done := make(chan error, 1)
		go func() { done <- e.Wait(Spin{}, time.Minute) }()
		deadline := time.Now().Add(20 * time.Second)
		for atomic.LoadUint32(e.bell(0)) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		word := uintptr(unsafe.Pointer(e.bell(0)))
		var inFutex bool
		for time.Now().Before(deadline) {
			if inFutex = futexWaiter(t, word); inFutex || !futex {
				break
			}
			time.Sleep(time.Millisecond) // armed; the futex call comes next
		}
		if inFutex != futex {
			t.Errorf("futex %v: a thread waits in FUTEX_WAIT on the doorbell: %v", futex, inFutex)
		}
		e.Wake()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// futexWaiter says whether a thread of this process is in a futex system
// call on addr (/proc/self/task/TID/syscall: the call's number, then its
// arguments).
func futexWaiter(t *testing.T, addr uintptr) bool {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d 0x%x ", unix.SYS_FUTEX, addr)
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err == nil && strings.HasPrefix(string(b), want) {
			return true
		}
	}
	return false
}

// TestSpinPure: a spin keeps its core (no Yield) for its Pure part, and
// yields between looks after it, to its end.
func TestSpinPure(t *testing.T) {
	spinFor := func(sp Spin) Spinning {
		s := sp.Start()
		for s.Next() {
		}
		if d := time.Since(s.start); d < sp.For {
			t.Fatalf("%+v ended after %v", sp, d)
		}
		return s
	}
	if s := spinFor(Spin{For: 5 * time.Millisecond, Pure: 5 * time.Millisecond}); s.Yields() != 0 {
		t.Errorf("a pure spin yielded %d times", s.Yields())
	}
	if s := spinFor(Spin{For: 5 * time.Millisecond}); s.Yields() == 0 {
		t.Error("a spin with no pure part never yielded")
	}
	s := spinFor(Spin{For: 10 * time.Millisecond, Pure: 5 * time.Millisecond})
	if s.Yields() == 0 || s.Yields() > s.looks/spinCheck/2+1 {
		t.Errorf("a spin half pure yielded %d times in %d looks", s.Yields(), s.looks)
	}
}
