//go:build linux

package shm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests below run ranks as real processes: the test binary started
// again with GORUN_SHM_CHILD naming the role, each process mapping the
// segment at its own address.

func TestMain(m *testing.M) {
	if role := os.Getenv("GORUN_SHM_CHILD"); role != "" {
		if err := child(role); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// As a host's launcher does at start: segments left by a test binary
	// that crashed before its cleanup go.
	Sweep("")
	os.Exit(m.Run())
}

func child(role string) error {
	noBell = os.Getenv("GORUN_SHM_NOBELL") != ""
	path := os.Getenv("GORUN_SHM_PATH")
	rank, _ := strconv.Atoi(os.Getenv("GORUN_SHM_RANK"))
	switch role {
	case "tcpecho":
		return tcpEcho()
	case "creator":
		// Makes a segment like a launcher, says where, and waits to be killed.
		p, err := NewPath(os.Getenv("GORUN_SHM_DIR"))
		if err != nil {
			return err
		}
		if err := CreateRing(p, 2, 4096); err != nil {
			return err
		}
		fmt.Println(p)
		select {}
	}
	e, err := Open(path, rank)
	if err != nil {
		return err
	}
	defer e.Close()
	switch role {
	case "exchange":
		frames, _ := strconv.Atoi(os.Getenv("GORUN_SHM_FRAMES"))
		return exchange(e, frames)
	case "echo":
		spin, _ := time.ParseDuration(os.Getenv("GORUN_SHM_SPIN"))
		return echo(e, spin)
	case "sleeper":
		// Sleeps on its doorbell with a long timeout until a frame comes.
		for {
			fr, ok, err := e.Recv(nil)
			_, f := fr.Src, fr.Data
			if err != nil {
				return err
			}
			if ok {
				if string(f) != "wake" {
					return fmt.Errorf("got %q", f)
				}
				return nil
			}
			if err := e.Wait(Spin{}, time.Minute); err != nil {
				return err
			}
		}
	case "idle":
		// Waits on an empty segment for 2 s and reports the CPU it used.
		var before, after unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &before)
		for t0 := time.Now(); time.Since(t0) < 2*time.Second; {
			if err := e.Wait(Spin{}, 100*time.Millisecond); err != nil {
				return err
			}
		}
		unix.Getrusage(unix.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		fmt.Println(cpu.Microseconds())
		return nil
	case "flood":
		// Sends numbered frames to rank 0 until it is killed.
		for i := 0; ; {
			err := sendParts(e, 0, content(1, i, frameSize(i, e.MaxFrame())))
			switch {
			case err == nil:
				i++
			case errors.Is(err, ErrFull):
				e.Wait(Spin{}, time.Second)
			default:
				return err
			}
		}
	case "fullsender":
		// Fills its ring to rank 0, then sleeps until rank 0 makes room.
		for {
			err := e.Send(0, 0, nil, []byte("fill"))
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				return err
			}
		}
		for {
			err := e.Send(0, 0, nil, []byte("last"))
			if err == nil {
				return nil
			}
			if !errors.Is(err, ErrFull) {
				return err
			}
			if err := e.Wait(Spin{}, time.Minute); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("no role %q", role)
}

// start starts the test binary as a child in role, with env added.
func start(t testing.TB, ctx context.Context, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "GORUN_SHM_CHILD="+role)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// frameSize is the size of frame i: the edges (empty, a word, the
// engine's header, the largest) and a spread in between.
func frameSize(i, max int) int {
	edges := []int{0, 1, 7, 8, 9, 40, 41, max - 1, max}
	if i%4 == 0 {
		return edges[(i/4)%len(edges)]
	}
	return (i * 7919) % (max + 1)
}

// exchange sends frames frames to every other rank and receives as many
// from each, checking that each sender's arrive whole and in order. A full
// ring keeps the frame for later; Wait sleeps when nothing moves.
func exchange(e *Endpoint, frames int) error {
	n, me := e.Size(), e.Rank()
	sent, got := make([]int, n), make([]int, n)
	sent[me], got[me] = frames, frames
	done := func(c []int) bool {
		for _, k := range c {
			if k < frames {
				return false
			}
		}
		return true
	}
	var buf []byte
	for !done(sent) || !done(got) {
		moved := false
		for d := range n {
			for sent[d] < frames {
				err := sendParts(e, d, content(me, sent[d], frameSize(sent[d], e.MaxFrame())))
				if errors.Is(err, ErrFull) {
					break
				}
				if err != nil {
					return err
				}
				sent[d]++
				moved = true
			}
		}
		for {
			fr, ok, err := e.Recv(buf)
			src, f := fr.Src, fr.Data
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			buf, moved = f, true
			if got[src] >= frames {
				return fmt.Errorf("a frame more than %d from %d", frames, src)
			}
			if want := content(src, got[src], frameSize(got[src], e.MaxFrame())); !bytes.Equal(f, want) || fr.Stream != byte(len(want)) {
				return fmt.Errorf("frame %d from %d: %d bytes, not the %d sent", got[src], src, len(f), len(want))
			}
			got[src]++
		}
		if !moved {
			if err := e.Wait(Spin{}, time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestProcessesExchange: three processes each send 2000 frames of every
// size class to the two others through 4 KiB rings (so that they wrap and
// fill all the time) and receive the others': nothing lost, nothing out of
// order, nothing changed.
func TestProcessesExchange(t *testing.T) {
	const n = 3
	path := segment(t, n, 4096)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmds := make([]*exec.Cmd, n)
	for r := range cmds {
		cmds[r] = start(t, ctx, "exchange", "GORUN_SHM_PATH="+path, "GORUN_SHM_RANK="+strconv.Itoa(r), "GORUN_SHM_FRAMES=2000")
		if err := cmds[r].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

// armed polls until local rank r's doorbell is armed (it sleeps), for at
// most 20 s.
func armed(t *testing.T, e *Endpoint, r int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for atomic.LoadUint32(e.bell(r)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("rank %d never armed its doorbell", r)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitExit waits for cmd; after d it kills it and fails with why.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration, why string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s within %v", why, d)
	}
}

// bellOrFutex runs test twice: with the ranks asleep on their bells, and
// on their doorbells' futexes (noBell, here and in the children: the env
// returned).
func bellOrFutex(t *testing.T, test func(t *testing.T, env ...string)) {
	t.Run("bell", func(t *testing.T) { test(t) })
	t.Run("futex", func(t *testing.T) {
		noBell = true
		defer func() { noBell = false }()
		test(t, "GORUN_SHM_NOBELL=1")
	})
}

// TestDoorbellWakesSleeper: a receiver asleep on its doorbell (a wait of a
// minute, on its bell or its futex) is woken by the frame a sender
// publishes, well before its timeout. Without the sender's ring (a
// datagram, or FUTEX_WAKE) it sleeps the full minute.
func TestDoorbellWakesSleeper(t *testing.T) { bellOrFutex(t, testDoorbellWakesSleeper) }

func testDoorbellWakesSleeper(t *testing.T, env ...string) {
	path := segment(t, 2, 4096)
	e := open(t, path, 0)
	cmd := start(t, context.Background(), "sleeper", append(env, "GORUN_SHM_PATH="+path, "GORUN_SHM_RANK=1")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	armed(t, e, 1)
	if e.PeerPID(1) != cmd.Process.Pid {
		t.Errorf("rank 1 says pid %d; it is %d", e.PeerPID(1), cmd.Process.Pid)
	}
	if err := e.Send(1, 0, nil, []byte("wake")); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, 20*time.Second, "the sleeping receiver did not wake")
}

// TestDoorbellWakesFullSender: a sender asleep after its ring filled is
// woken when the receiver takes a frame (the ring's want-room word makes
// the receiver ring its doorbell).
func TestDoorbellWakesFullSender(t *testing.T) { bellOrFutex(t, testDoorbellWakesFullSender) }

func testDoorbellWakesFullSender(t *testing.T, env ...string) {
	path := segment(t, 2, 4096)
	e := open(t, path, 0)
	cmd := start(t, context.Background(), "fullsender", append(env, "GORUN_SHM_PATH="+path, "GORUN_SHM_RANK=1")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	armed(t, e, 1)
	if fr, ok, err := e.Recv(nil); !ok || err != nil || string(fr.Data) != "fill" {
		t.Fatalf("recv: %q %v %v", fr.Data, ok, err)
	}
	waitExit(t, cmd, 20*time.Second, "the sender waiting for room did not wake")
	n := 0
	for {
		fr, ok, err := e.Recv(nil)
		_, f := fr.Src, fr.Data
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
		if string(f) == "last" {
			break
		}
	}
	if want := 4096 / 16; n != want {
		t.Errorf("%d frames after the first, want %d", n, want)
	}
}

// TestIdleWaitSleeps: a rank that waits 2 s on rings where nothing comes
// (no spinning, as on a host with fewer cores than ranks) uses under 5% of
// a core: it sleeps on its doorbell.
func TestIdleWaitSleeps(t *testing.T) {
	path := segment(t, 2, 4096)
	cmd := start(t, context.Background(), "idle", "GORUN_SHM_PATH="+path, "GORUN_SHM_RANK=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	us, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("the idle rank said %q", out)
	}
	if us > 100_000 {
		t.Errorf("an idle rank used %d us of CPU in 2 s, over 5%% of a core", us)
	}
	t.Logf("an idle rank used %d us of CPU in 2 s", us)
}

// TestSweepAfterKill: the segment of a creator that was SIGKILLed is
// removed by Sweep; nothing is left.
func TestSweepAfterKill(t *testing.T) {
	dir := t.TempDir()
	cmd := start(t, context.Background(), "creator", "GORUN_SHM_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimSpace(line)
	if gone, err := Sweep(dir); err != nil || len(gone) != 0 {
		t.Fatalf("Sweep with the creator alive: %v %v", gone, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	gone, err := Sweep(dir)
	if err != nil || len(gone) != 1 || gone[0] != path {
		t.Fatalf("Sweep after the kill: %v %v, want [%s]", gone, err, path)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in %s: %v", dir, ents)
	}
}

// TestSenderKilled: a sender SIGKILLed while it floods a ring leaves only
// whole frames, in order: the receiver takes what was published and then
// finds the ring empty, never a torn frame or an error.
func TestSenderKilled(t *testing.T) {
	path := segment(t, 2, 4096)
	e := open(t, path, 0)
	cmd := start(t, context.Background(), "flood", "GORUN_SHM_PATH="+path, "GORUN_SHM_RANK=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	got := 0
	check := func() bool {
		fr, ok, err := e.Recv(nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok && !bytes.Equal(fr.Data, content(1, got, frameSize(got, e.MaxFrame()))) {
			t.Fatalf("frame %d is not the one sent", got)
		}
		if ok {
			got++
		}
		return ok
	}
	for got < 1000 {
		if !check() {
			e.Wait(Spin{}, time.Second)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	for check() {
	}
	t.Logf("%d frames, all whole and in order", got)
}

// echo sends back every frame from rank 0 until the frame "q".
func echo(e *Endpoint, spin time.Duration) error {
	var buf []byte
	for {
		fr, ok, err := e.Recv(buf)
		f := fr.Data
		if err != nil {
			return err
		}
		if !ok {
			if err := e.Wait(Spin{For: spin}, time.Second); err != nil {
				return err
			}
			continue
		}
		buf = f
		if string(f) == "q" {
			return nil
		}
		for {
			err := e.Send(0, 0, nil, f)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrFull) {
				return err
			}
			e.Wait(Spin{For: spin}, time.Second)
		}
	}
}

func tcpEcho() error {
	size, _ := strconv.Atoi(os.Getenv("GORUN_SHM_SIZE"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	c, err := l.Accept()
	if err != nil {
		return err
	}
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil // the benchmark hung up
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
}

// BenchmarkPingPong measures the half round trip of a frame between two
// processes: through a ring with both sides spinning (a core each), through
// a ring with both sides sleeping on their doorbells every time, and over
// loopback TCP, side by side in one run (us/half-rt). The -handoff runs
// receive on a poller goroutine that hands each frame to the sending
// goroutine over a channel, as a transport that feeds an engine would: the
// difference is the cost of that hand-off.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range []int{8, 1024} {
		b.Run(fmt.Sprintf("shm-spin/%dB", size), func(b *testing.B) { benchShm(b, size, 50*time.Millisecond, false) })
		b.Run(fmt.Sprintf("shm-sleep/%dB", size), func(b *testing.B) { benchShm(b, size, 0, false) })
		b.Run(fmt.Sprintf("shm-spin-handoff/%dB", size), func(b *testing.B) { benchShm(b, size, 50*time.Millisecond, true) })
		b.Run(fmt.Sprintf("shm-sleep-handoff/%dB", size), func(b *testing.B) { benchShm(b, size, 0, true) })
		b.Run(fmt.Sprintf("tcp/%dB", size), func(b *testing.B) { benchTCP(b, size) })
	}
}

func benchShm(b *testing.B, size int, spin time.Duration, handoff bool) {
	path := segment(b, 2, RingBytes)
	e := open(b, path, 0)
	cmd := start(b, context.Background(), "echo", "GORUN_SHM_PATH="+path, "GORUN_SHM_RANK=1", "GORUN_SHM_SPIN="+spin.String())
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	msg, buf := make([]byte, size), make([]byte, 0, size)
	roundTrip := func() {
		if err := e.Send(1, 0, nil, msg); err != nil {
			b.Fatal(err)
		}
		for {
			fr, ok, err := e.Recv(buf)
			_, f := fr.Src, fr.Data
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				buf = f
				return
			}
			e.Wait(Spin{For: spin}, time.Second)
		}
	}
	if handoff {
		ch, stop, done := make(chan []byte), make(chan struct{}), make(chan struct{})
		defer func() { close(stop); <-done }() // before the endpoint closes
		go func() {
			defer close(done)
			var buf []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				f, ok, err := e.Recv(buf)
				if err != nil {
					panic(err)
				}
				if !ok {
					e.Wait(Spin{For: spin}, 10*time.Millisecond)
					continue
				}
				select {
				case ch <- f.Data:
				case <-stop:
					return
				}
				buf = nil
			}
		}()
		roundTrip = func() {
			if err := e.Send(1, 0, nil, msg); err != nil {
				b.Fatal(err)
			}
			<-ch
		}
	}
	roundTrip() // the child is up
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		roundTrip()
	}
	el := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N)/2/1000, "us/half-rt")
	e.Send(1, 0, nil, []byte("q"))
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}

func benchTCP(b *testing.B, size int) {
	cmd := start(b, context.Background(), "tcpecho", "GORUN_SHM_SIZE="+strconv.Itoa(size))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimSpace(addr))
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, size)
	roundTrip := func() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip()
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		roundTrip()
	}
	el := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N)/2/1000, "us/half-rt")
	c.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}
