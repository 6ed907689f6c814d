package mpi

// The bus is untrusted input: regression tests for the attacks and crashers
// of a hostile tester, and fuzz targets for every frame handler and the
// start-up handshake. Frames go through a real in-process nats-server whose
// ranks have keys of their own, as under gorun.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/subject"
)

// hostileJob is an n-rank job of engines in this process, on a server that
// admits each rank with its own key (subject.Permissions), and the keys, so
// that a test can connect as a rank beside it.
type hostileJob struct {
	srv   *server.Server
	job   string
	seeds []string
	comms []*Comm
	reads chan int // the pid of every single-copy read any rank made
}

func startHostile(tb testing.TB, n int, opts ...Option) *hostileJob {
	tb.Helper()
	j := &hostileJob{job: uuid.NewString(), seeds: make([]string, n), comms: make([]*Comm, n), reads: make(chan int, 1024)}
	users := make([]*server.NkeyUser, n)
	for r := range n {
		kp, _ := nkeys.CreateUser()
		pk, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		j.seeds[r] = string(seed)
		pub, sub := subject.Permissions(j.job, r)
		users[r] = &server.NkeyUser{Nkey: pk, Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: pub}, Subscribe: &server.SubjectPermission{Allow: sub}}}
	}
	s, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true, MaxPending: 256 << 20, Nkeys: users})
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("server not ready")
	}
	j.srv = s
	hook := WithReadHook(func(pid int, addr uint64, buf []byte) error {
		select {
		case j.reads <- pid:
		default:
		}
		return readRemote(pid, addr, buf)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for r := range n {
		wg.Go(func() {
			o := append([]Option{WithJob(j.job, r, n), WithNATS("", "", nats.InProcessServer(s)),
				WithCredentials(j.seeds[r]), WithExitOnLoss(false), hook}, opts...)
			j.comms[r], errs[r] = Init(ctx, o...)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		j.close()
		tb.Fatal(err)
	}
	return j
}

func (j *hostileJob) close() {
	for _, c := range j.comms {
		if c != nil {
			c.e.opts.CloseTimeout = time.Second
			c.Close()
		}
	}
	j.srv.Shutdown()
}

// as connects to the job's server with rank's key, collecting the errors
// the server reports.
func (j *hostileJob) as(tb testing.TB, rank int, errs chan<- error) *nats.Conn {
	tb.Helper()
	kp, _ := nkeys.FromSeed([]byte(j.seeds[rank]))
	pk, _ := kp.PublicKey()
	nc, err := nats.Connect("", nats.InProcessServer(j.srv), nats.Nkey(pk, kp.Sign), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

func frame(h header, payload []byte) []byte {
	b := make([]byte, hdrLen, hdrLen+len(payload))
	putHeader(b, h)
	return append(b, payload...)
}

// waitErr waits for c's job to fail, and returns why.
func waitErr(tb testing.TB, c *Comm) error {
	tb.Helper()
	for t0 := time.Now(); time.Since(t0) < 10*time.Second; time.Sleep(time.Millisecond) {
		if err := c.Err(); err != nil {
			return err
		}
	}
	tb.Fatal("the rank did not fail within 10 s")
	return nil
}

// TestForgedOffer (acceptance 1): a single-copy offer naming a process that
// is not the sending rank (here a child of the test) makes the receiver
// read nothing; its Recv fails with a protocol error naming the offer and
// gets no forged data. A process without the job's keys cannot connect at
// all, and one with rank 2's key cannot send as rank 1: the server refuses,
// and rank 0 gets rank 1's real message.
func TestForgedOffer(t *testing.T) {
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	j := startHostile(t, 3)
	defer j.close()
	victim := j.comms[0]
	host := hostIdentity()
	offer := appendOffer(nil, offer{pid: other.Process.Pid, host: host | 1, addr: 0x10000})
	rts := frame(header{kind: kRTS, src: 1, tag: 5, id: 99, n: 36}, offer)
	goF := frame(header{kind: kGo, src: 1, id: 99}, nil)

	// No key: no connection.
	if nc, err := nats.Connect("", nats.InProcessServer(j.srv), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a connection without a key was let in")
	}
	// Rank 2's key, claiming rank 1: refused, and rank 0 receives rank 1's
	// real message.
	errs := make(chan error, 4)
	nc := j.as(t, 2, errs)
	for _, f := range [][]byte{rts, goF} {
		if err := nc.Publish(subject.Inbox(j.job, 0, 1), f); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "Permissions Violation") {
			t.Fatalf("forging rank 1: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server let rank 2 publish as rank 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go j.comms[1].Send(ctx, 0, 5, []byte("the real message from rank 1"))
	got, st, err := victim.Recv(ctx, 1, 5)
	if err != nil || string(got) != "the real message from rank 1" || st.Source != 1 {
		t.Fatalf("rank 0 got %q, %+v, %v; want rank 1's real message", got, st, err)
	}

	// Rank 1's own key (a job member gone bad): the offer names another
	// process, so rank 0 reads nothing and fails loudly.
	r := victim.Irecv(1, 5)
	nc1 := j.as(t, 1, errs)
	for _, f := range [][]byte{rts, goF} {
		if err := nc1.Publish(subject.Inbox(j.job, 0, 1), f); err != nil {
			t.Fatal(err)
		}
	}
	nc1.Flush()
	_, err = r.Wait(ctx)
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "field offer") || !strings.Contains(err.Error(), subject.Inbox(j.job, 0, 1)) {
		t.Fatalf("the forged offer's receive: %v, want a protocol error naming the subject and the offer", err)
	}
	if r.Data() != nil {
		t.Fatalf("the forged offer delivered %q", r.Data())
	}
	close(j.reads)
	for pid := range j.reads {
		if pid != os.Getpid() {
			t.Fatalf("a rank read the memory of pid %d, not a rank's (%d)", pid, os.Getpid())
		}
	}
}

// TestCrashers (acceptance 2): each frame that crashed or wedged a rank now
// fails it with a protocol error naming the subject and the field.
func TestCrashers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		post   func(c *Comm) *Request // a receive posted first, or nil
		frames func(job string) [][2]string
		field  string
	}{
		{"RTS of 2^64-1 into RecvInto", func(c *Comm) *Request { return c.IrecvInto(1, 0, make([]byte, 8)) },
			func(string) [][2]string {
				return [][2]string{{string(frame(header{kind: kRTS, src: 1, id: 1, n: 1<<64 - 1}, nil)), ""}}
			}, "field n"},
		{"RTS of 2^62 then a chunk", func(c *Comm) *Request { return c.Irecv(1, 0) },
			func(string) [][2]string {
				return [][2]string{
					{string(frame(header{kind: kRTS, src: 1, id: 1, n: 1 << 62}, nil)), ""},
					{"chunk", makeToken(tokChunk, 1, 1, 0)},
				}
			}, "field n"},
		{"RTS of 1 TiB then a chunk beyond the grant", func(c *Comm) *Request { return c.Irecv(1, 0) },
			func(string) [][2]string {
				return [][2]string{
					{string(frame(header{kind: kRTS, src: 1, id: 1, n: 1 << 40}, nil)), ""},
					{"chunk", makeToken(tokChunk, 1, 1, 1<<30)},
				}
			}, "reply token"},
		{"credit of 2^63", nil, func(string) [][2]string {
			return [][2]string{{string(frame(header{kind: kCredit, src: 1, n: 1 << 63}, nil)), ""}}
		}, "field n"},
		{"a frame that claims rank 2", nil, func(string) [][2]string {
			return [][2]string{{string(frame(header{kind: kEager, src: 2}, []byte("x"))), ""}}
		}, "field src"},
		{"a short frame", nil, func(string) [][2]string { return [][2]string{{"short", ""}} }, "field length"},
		{"an unknown kind", nil, func(string) [][2]string {
			return [][2]string{{string(frame(header{kind: 77, src: 1}, nil)), ""}}
		}, "field kind"},
		{"a negative tag", nil, func(string) [][2]string {
			return [][2]string{{string(frame(header{kind: kEager, src: 1, tag: -5}, nil)), ""}}
		}, "field tag"},
		{"eager beyond credit", nil, func(string) [][2]string {
			return [][2]string{{strings.Repeat("x", 1<<20), makeToken(tokEager, 1, 0, 0)}}
		}, "field credit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := startHostile(t, 2, WithBuffers(256<<10, 1<<20))
			defer j.close()
			var r *Request
			if tt.post != nil {
				r = tt.post(j.comms[0])
			}
			nc := j.as(t, 1, make(chan error, 1))
			for _, f := range tt.frames(j.job) {
				if err := nc.PublishMsg(&nats.Msg{Subject: subject.Inbox(j.job, 0, 1), Reply: f[1], Data: []byte(f[0])}); err != nil {
					t.Fatal(err)
				}
			}
			nc.Flush()
			err := waitErr(t, j.comms[0])
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), subject.Inbox(j.job, 0, 1)) {
				t.Fatalf("%v, want a protocol error naming %s and the subject", err, tt.field)
			}
			if r != nil {
				if _, err := r.Wait(context.Background()); !errors.Is(err, ErrProtocol) {
					t.Fatalf("the posted receive: %v, want the protocol error", err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := j.comms[0].Send(ctx, 1, 0, make([]byte, 1<<20)); !errors.Is(err, ErrProtocol) {
				t.Fatalf("a send after the protocol error: %v, want the protocol error, at once", err)
			}
		})
	}
}

// TestAbortCodeZero: an abort frame with code 0 (which would end the job
// with exit 0, as if it had succeeded) is a protocol error, and so is one
// that claims another rank; a rank's own Abort(0) exits 1.
func TestAbortCodeZero(t *testing.T) {
	for _, tt := range []struct {
		rank, code int
		field      string
	}{{1, 0, "field code"}, {1, 256, "field code"}, {2, 3, "field rank"}} {
		j := startHostile(t, 3)
		nc := j.as(t, 1, make(chan error, 1))
		if err := nc.Publish(subject.Abort(j.job, 1), abortPayload(tt.rank, tt.code)); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		err := waitErr(t, j.comms[0])
		var ae *AbortError
		if errors.As(err, &ae) || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("abort (%d, %d): %v, want a protocol error naming %s", tt.rank, tt.code, err, tt.field)
		}
		j.close()
	}
	j := startHostile(t, 2)
	defer j.close()
	exited := make(chan int, 1)
	j.comms[1].e.opts.AbortFunc = func(code int) { exited <- code; select {} }
	go j.comms[1].Abort(0)
	if code := <-exited; code != 1 {
		t.Fatalf("Abort(0) exits %d, want 1", code)
	}
	var ae *AbortError
	if err := waitErr(t, j.comms[0]); !errors.As(err, &ae) || ae.Code != 1 {
		t.Fatalf("the other rank: %v, want an abort with code 1", err)
	}
}

// ---- fuzzing ----

// fuzzHarness is a live job whose rank 0 the fuzz targets feed frames to,
// rebuilt when a frame has (rightly) failed it.
type fuzzHarness struct {
	mu   sync.Mutex
	j    *hostileJob
	recv []*Request
	live [2]*Comm // a Dup of rank 0's and rank 1's world, for the liveness check
	n    int
}

var fuzzJobs = map[int]*fuzzHarness{}
var fuzzJobsMu sync.Mutex

func harness(n int) *fuzzHarness {
	fuzzJobsMu.Lock()
	defer fuzzJobsMu.Unlock()
	h := fuzzJobs[n]
	if h == nil {
		h = &fuzzHarness{n: n}
		fuzzJobs[n] = h
	}
	return h
}

var fuzzBuf = make([]byte, 1<<10)

// get returns the live job, with receives posted on rank 0 for frames to
// match (one into a small buffer).
func (h *fuzzHarness) get(t *testing.T) *hostileJob {
	if h.j == nil || h.j.comms[0].Err() != nil || h.j.comms[1].Err() != nil {
		if h.j != nil {
			h.j.close()
		}
		h.j = startHostile(t, h.n, WithBuffers(1<<20, 1<<20))
		h.recv = nil
		for i := range h.live {
			var err error
			if h.live[i], err = h.j.comms[i].Dup(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for len(h.recv) < 2 {
		c := h.j.comms[0]
		if len(h.recv) == 0 {
			h.recv = append(h.recv, c.Irecv(AnySource, AnyTag))
		} else {
			h.recv = append(h.recv, c.IrecvInto(AnySource, AnyTag, fuzzBuf))
		}
	}
	return h.j
}

// check is what every input must leave: no read of a process that is not a
// rank, every rank either alive (a message still goes both ways) or failed
// with a protocol error, and nothing hung.
func (h *fuzzHarness) check(t *testing.T) {
	j := h.j
	for {
		select {
		case pid := <-j.reads:
			if pid != os.Getpid() {
				t.Fatalf("a rank read the memory of pid %d, not a rank's", pid)
			}
			continue
		default:
		}
		break
	}
	kept := h.recv[:0]
	for _, r := range h.recv {
		select {
		case <-r.Done():
		default:
			kept = append(kept, r)
		}
	}
	h.recv = kept
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var serr, rerr error
	const tag = 1 << 30
	wg.Go(func() { serr = h.live[1].Send(ctx, 0, tag, []byte("alive")) })
	_, _, rerr = h.live[0].Recv(ctx, 1, tag)
	wg.Wait()
	for _, err := range []error{serr, rerr, j.comms[0].Err(), j.comms[1].Err()} {
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("after the frames: %v; want the rank alive or failed with a protocol error", err)
		}
	}
}

// seedFrames are real frames, as the engine makes them.
func seedFrames() [][2]string {
	o := appendOffer(nil, offer{pid: os.Getpid(), host: hostIdentity(), addr: 0x1000})
	f := func(h header, p []byte) [2]string { return [2]string{string(frame(h, p)), ""} }
	return [][2]string{
		f(header{kind: kEager, src: 1, tag: 3}, []byte("hello")),
		f(header{kind: kRTS, src: 1, tag: 3, id: 1, n: 100 << 10}, nil),
		f(header{kind: kRTS, src: 1, tag: 3, id: 2, n: 100 << 10}, o),
		f(header{kind: kCTS, src: 1, id: 1, n: 1 << 20}, nil),
		f(header{kind: kCredit, src: 1, n: 4096}, nil),
		f(header{kind: kCancel, src: 1, tag: 3, id: 1}, nil),
		f(header{kind: kPull, src: 1, id: 1}, nil),
		f(header{kind: kGo, src: 1, id: 2}, nil),
		f(header{kind: kDone, src: 1, id: 1, n: 1}, nil),
		{strings.Repeat("e", bigEager), makeToken(tokEager, 1, 0, 3)},
		{strings.Repeat("c", 64<<10), makeToken(tokChunk, 1, 1, 0)},
	}
}

func fuzzFrames(f *testing.F, n int, deliver func(e *engine, job, data, reply string)) {
	seeds := seedFrames()
	for _, a := range seeds {
		for _, b := range seeds {
			f.Add(a[0], a[1], b[0], b[1])
		}
	}
	h := harness(n)
	f.Fuzz(func(t *testing.T, d1, r1, d2, r2 string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		j := h.get(t)
		deliver(j.comms[0].e, j.job, d1, r1)
		deliver(j.comms[0].e, j.job, d2, r2)
		h.check(t)
	})
}

// FuzzInbox feeds pairs of frames from rank 1 to rank 0's inbox handler.
func FuzzInbox(f *testing.F) {
	fuzzFrames(f, 2, func(e *engine, job, data, reply string) {
		e.tr.(*natsTransport).onMsg(&nats.Msg{Subject: subject.Inbox(job, 0, 1), Data: []byte(data), Reply: reply})
	})
}

// FuzzMulticast feeds pairs of frames from rank 1 to rank 0's multicast
// handler.
func FuzzMulticast(f *testing.F) {
	fuzzFrames(f, 3, func(e *engine, job, data, reply string) {
		e.tr.(*natsTransport).onMulticast(&nats.Msg{Subject: subject.Multicast(job, 1), Data: []byte(data), Reply: reply})
	})
}

// FuzzAbort feeds abort frames, on any subject, to rank 0's abort handler:
// it must end up aborted with a code in [1, 255], failed with a protocol
// error, or untouched.
func FuzzAbort(f *testing.F) {
	f.Add("1", abortPayload(1, 3))
	f.Add("1", abortPayload(1, 0))
	f.Add("2", abortPayload(1, 3))
	f.Add("x", abortPayload(1, 3))
	f.Fuzz(func(t *testing.T, src string, data []byte) {
		e := newEngine(Options{Rank: 0, Size: 3, JobID: "j", EagerLimit: 1 << 10})
		e.setLimits(1 << 20)
		nt := newNATSTransport(e)
		nt.abortPfx = subject.AbortPrefix("j")
		e.markStarted()
		nt.onAbort(&nats.Msg{Subject: nt.abortPfx + src, Data: data})
		var ae *AbortError
		switch err := e.err; {
		case err == nil, errors.Is(err, ErrProtocol):
		case errors.As(err, &ae) && ae.Code >= 1 && ae.Code <= 255 && ae.Rank > 0 && ae.Rank < 3:
		default:
			t.Fatalf("%v", err)
		}
	})
}

// FuzzHandshake feeds start-up requests to rank 0's side of the handshake,
// and start-up answers to another rank's: neither panics, and what they
// accept is within bounds.
func FuzzHandshake(f *testing.F) {
	const job, size = "j", 4
	own := hello{pid: 7, host: 9, credit: 1 << 20}
	g := newGathering(job, size, own, "s0")
	good := append(appendHello(nil, 2, size, own), 1)
	good = append(good, "s1"...)
	f.Add(subject.Ready(job, 2), subject.ReplyPrefix(job, 2)+".x.y", good, g.answer())
	f.Add(subject.Ready(job, 0), "", good[:10], append([]byte{startFail}, "no"...))
	f.Add(subject.Ready(job, 3), subject.ReplyPrefix(job, 3)+".z", append(good[:helloLen:helloLen], 2), []byte{startProbe})
	f.Fuzz(func(t *testing.T, subj, reply string, req, answer []byte) {
		g := newGathering(job, size, own, "s0")
		// The request in round 1, then again in round 2.
		for range 2 {
			g.add(subj, reply, req)
			for r, rep := range g.replies {
				if r < 1 || r >= size || !strings.HasPrefix(rep, subject.ReplyPrefix(job, r)+".") {
					t.Fatalf("accepted a request of rank %d answered on %q", r, rep)
				}
				if p := g.peers[r]; p.credit < 1 || p.credit > maxCredit {
					t.Fatalf("accepted credit %d", p.credit)
				}
				if len(g.servers[r]) > maxServerID {
					t.Fatalf("accepted a server id of %d bytes", len(g.servers[r]))
				}
			}
			g.next()
		}
		peers, err := parseStart(answer, 1, size, own)
		if err == nil {
			if len(peers) != size || peers[1] != own {
				t.Fatalf("accepted %+v", peers)
			}
			for _, p := range peers {
				if p.credit < 1 || p.credit > maxCredit {
					t.Fatalf("accepted credit %d", p.credit)
				}
			}
		}
	})
}
