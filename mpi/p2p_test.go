package mpi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/gorun-hpc/gorun/internal/testing/wait"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestAnySourceManySenders: 5 senders x 3000 messages with mixed tags to rank
// 0, which receives with AnySource/AnyTag: none lost, none doubled, each
// sender's order kept.
func TestAnySourceManySenders(t *testing.T) {
	const senders, perSender = 5, 3000
	mpitest.Run(t, senders+1, func(ctx context.Context, c *mpi.Comm) error {
		return floodSmall(ctx, c, perSender, 8, false)
	})
}

// floodSmall: every rank but 0 sends k messages of size bytes (at least 8;
// tag i%5, starting with (rank, i)) to rank 0, which receives them with
// AnySource/AnyTag, and checks that each sender's messages arrive exactly
// once and in order. With busy, rank 0 receives nothing until every sender
// has sent all it can eagerly: all k messages, or as many as its credit
// share holds beyond the reserve (the sender then waits, its message gone
// as a rendezvous).
func floodSmall(ctx context.Context, c *mpi.Comm, k, size int, busy bool) error {
	if c.Rank() != 0 {
		body := make([]byte, size)
		for i := range k {
			binary.LittleEndian.PutUint32(body, uint32(c.Rank()))
			binary.LittleEndian.PutUint32(body[4:], uint32(i))
			if err := c.Send(ctx, 0, i%5, body); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		return nil
	}
	if busy {
		cost := int64(size) + mpi.FrameCost
		full := func(src int) bool {
			_, held := c.Waiting(src)
			return held == int64(k)*cost || held > c.CreditShare()-c.CreditReserve()-cost
		}
		if err := untilAll(ctx, c, full); err != nil {
			return err
		}
	}
	next := make([]int, c.Size())
	for range k * (c.Size() - 1) {
		b, st, err := c.Recv(ctx, mpi.AnySource, mpi.AnyTag)
		if err != nil {
			return err
		}
		src, i := int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:]))
		if src != st.Source || st.Tag != i%5 || st.Count != len(b) || len(b) < 8 {
			return fmt.Errorf("message (%d, %d) with status %+v", src, i, st)
		}
		if i != next[src] {
			return fmt.Errorf("from rank %d: got message %d, want %d (lost, doubled or reordered)", src, i, next[src])
		}
		next[src]++
	}
	for r := 1; r < c.Size(); r++ {
		if next[r] != k {
			return fmt.Errorf("rank %d: %d messages, want %d", r, next[r], k)
		}
	}
	return nil
}

// untilAll polls, every millisecond, until cond holds for every rank of c
// but 0, or ctx ends.
func untilAll(ctx context.Context, c *mpi.Comm, cond func(src int) bool) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for src := 1; src < c.Size(); {
		if cond(src) {
			src++
			continue
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("rank %d's messages never all arrived: %w", src, ctx.Err())
		}
	}
	return nil
}

// TestSizes: the payload limit's neighbourhood and 100 MiB arrive byte-exact.
func TestSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB transfer; skipped with -short")
	}
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		for _, sz := range []int{0, 1, 1 << 20, 1<<20 + 1, 100 << 20} {
			if c.Rank() == 0 {
				if err := c.Send(ctx, 1, 0, pattern(sz, sz)); err != nil {
					return fmt.Errorf("size %d: %w", sz, err)
				}
				continue
			}
			b, st, err := c.Recv(ctx, 0, 0)
			if err != nil {
				return fmt.Errorf("size %d: %w", sz, err)
			}
			if st.Count != sz || !bytes.Equal(b, pattern(sz, sz)) {
				return fmt.Errorf("size %d: got %d bytes, count %d, content equal %v", sz, len(b), st.Count, bytes.Equal(b, pattern(sz, sz)))
			}
		}
		return nil
	})
}

// floodLarge: every rank but 0 Isends k messages of size bytes to rank 0;
// once all have been announced (or at once, without busy), rank 0 receives
// and checks them one by one.
func floodLarge(ctx context.Context, c *mpi.Comm, k, size int, busy bool, onRecv func()) error {
	if c.Rank() != 0 {
		msgs := make([][]byte, k)
		reqs := make([]*mpi.Request, k)
		for i := range k {
			msgs[i] = pattern(size, c.Rank()*1000+i)
			reqs[i] = c.Isend(0, 5, msgs[i])
		}
		return mpi.WaitAll(ctx, reqs...)
	}
	if busy {
		announced := func(src int) bool { n, _ := c.Waiting(src); return n == k }
		if err := untilAll(ctx, c, announced); err != nil {
			return err
		}
	}
	next := make([]int, c.Size())
	for range k * (c.Size() - 1) {
		b, st, err := c.Recv(ctx, mpi.AnySource, 5)
		if err != nil {
			return err
		}
		i := next[st.Source]
		if !bytes.Equal(b, pattern(size, st.Source*1000+i)) {
			return fmt.Errorf("message %d from rank %d: %d bytes, content differs", i, st.Source, len(b))
		}
		next[st.Source]++
		if onRecv != nil {
			onRecv()
		}
	}
	return nil
}

// TestFlood: 4 ranks each Isend 40 x 1 MiB to rank 0, which receives
// nothing until all 160 are announced;
// everything arrives intact and no slow-consumer event fails the job (it
// would fail every rank with ErrConnLost). The memory bound is checked with
// real processes in TestProcessFloodMemory.
func TestFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("160 MiB flood; skipped with -short")
	}
	mpitest.Run(t, 5, func(ctx context.Context, c *mpi.Comm) error {
		return floodLarge(ctx, c, 40, 1<<20, true, nil)
	})
}

// TestFloodSmall: many small messages at a rank that sleeps: senders block on
// credit instead of overrunning it, and nothing is lost.
//
// Credit is what bounds the receiver's memory: the unreceived bytes from
// any one sender never pass its share of the budget, and the senders did
// wait for credit (the flood is several times the share).
func TestFloodSmall(t *testing.T) {
	const n, k, size, budget = 4, 20000, 64, 1 << 20
	stats := make([]mpi.FlowStats, n)
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		err := floodSmall(ctx, c, k, size, true)
		stats[c.Rank()] = c.FlowStats()
		return err
	}, mpi.WithBuffers(budget, 4<<20))
	checkCredit(t, stats, creditShare(budget, mpi.DefaultOptions().EagerLimit, n), 1, 2, 3)
	if flood := int64(k * (size + mpi.FrameCost)); flood < 2*creditShare(budget, mpi.DefaultOptions().EagerLimit, n) {
		t.Fatalf("a flood of %d bytes per sender does not test a credit share of %d", flood, creditShare(budget, mpi.DefaultOptions().EagerLimit, n))
	}
}

// creditShare is the eager credit each of a rank's n-1 peers has towards
// it: the budget shared out, and at least two messages of the eager limit.
func creditShare(budget, eagerLimit, n int) int64 {
	return max(int64(budget)/int64(max(n-1, 1)), 2*int64(eagerLimit+mpi.FrameCost))
}

// checkCredit checks that rank 0 never held more than share unreceived
// eager bytes from one peer, and that each of senders waited for credit.
func checkCredit(t *testing.T, stats []mpi.FlowStats, share int64, senders ...int) {
	t.Helper()
	t.Logf("credit share %d; rank 0 held at most %d bytes from one peer", share, stats[0].PeakHeld)
	if stats[0].PeakHeld > share {
		t.Errorf("rank 0 held %d unreceived eager bytes from one peer, past the credit share of %d", stats[0].PeakHeld, share)
	}
	if stats[0].PeakHeld == 0 {
		t.Errorf("rank 0 held no unreceived message: the test did not make it wait")
	}
	for _, r := range senders {
		if stats[r].CreditWaits == 0 {
			t.Errorf("rank %d never waited for credit", r)
		}
	}
}

// TestRendezvousWindow: 4 senders each Isend 4 large messages to a rank
// that posts all 16 receives at once; the bytes granted and not yet received
// never pass the rendezvous window, which the flood would fill four times,
// and everything arrives intact and in order.
func TestRendezvousWindow(t *testing.T) {
	const n, k, size, window = 5, 4, 1 << 20, 4 << 20
	stats := make([]mpi.FlowStats, n)
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		defer func() { stats[c.Rank()] = c.FlowStats() }()
		if c.Rank() != 0 {
			reqs := make([]*mpi.Request, k)
			for i := range reqs {
				reqs[i] = c.Isend(0, 5, pattern(size, c.Rank()*1000+i))
			}
			return mpi.WaitAll(ctx, reqs...)
		}
		reqs := make([][]*mpi.Request, n)
		for src := 1; src < n; src++ {
			for range k {
				reqs[src] = append(reqs[src], c.Irecv(src, 5))
			}
		}
		for src := 1; src < n; src++ {
			for i, r := range reqs[src] {
				if _, err := r.Wait(ctx); err != nil {
					return err
				}
				if !bytes.Equal(r.Data(), pattern(size, src*1000+i)) {
					return fmt.Errorf("message %d from rank %d differs", i, src)
				}
			}
		}
		return nil
	}, mpi.WithBuffers(64<<20, window), mpi.WithSingleCopy(false))
	t.Logf("peak window %d of %d", stats[0].PeakWindow, window)
	if stats[0].PeakWindow > window {
		t.Errorf("%d bytes granted at once, past the window of %d", stats[0].PeakWindow, window)
	}
	if (n-1)*k*size <= window {
		t.Fatalf("the flood of %d bytes does not pass the window of %d", (n-1)*k*size, window)
	}
	if stats[0].PeakWindow == 0 {
		t.Errorf("no rendezvous grant counted")
	}
}

// TestRecvDeadline: a receive whose deadline passes returns promptly with an
// error wrapping context.DeadlineExceeded, and leaves nothing behind: the
// next message goes to the next receive.
func TestRecvDeadline(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil { // wait until rank 0 has timed out
				return err
			}
			return c.Send(ctx, 0, 0, []byte("late"))
		}
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := c.Recv(dctx, 1, 0)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("Recv after deadline: %v, want DeadlineExceeded", err)
		}
		if took > 700*time.Millisecond {
			return fmt.Errorf("Recv with a 200ms deadline returned after %v", took)
		}
		if _, err := c.Probe(dctx, 1, 0); !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("Probe after deadline: %v", err)
		}
		if err := c.Send(ctx, 1, 1, nil); err != nil {
			return err
		}
		b, _, err := c.Recv(ctx, 1, 0)
		if err != nil || string(b) != "late" {
			return fmt.Errorf("after a timed-out Recv: got %q, %v", b, err)
		}
		return nil
	})
}

// TestBadArguments: out-of-range ranks and tags are errors, not panics.
func TestBadArguments(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		n := c.Size()
		check := func(what string, err, want error) error {
			if !errors.Is(err, want) {
				return fmt.Errorf("%s: got %v, want %v", what, err, want)
			}
			return nil
		}
		var errs []error
		for _, r := range []int{n, mpi.ProcNull - 1, 1 << 40} { // ProcNull (-2) is a valid peer
			errs = append(errs,
				check(fmt.Sprintf("Send to %d", r), c.Send(ctx, r, 0, nil), mpi.ErrRank),
				check(fmt.Sprintf("Isend to %d", r), waitErr(ctx, c.Isend(r, 0, nil)), mpi.ErrRank),
				check(fmt.Sprintf("Irecv from %d", r), waitErr(ctx, c.Irecv(r, 0)), mpi.ErrRank),
			)
			_, _, err := c.Recv(ctx, r, 0)
			errs = append(errs, check(fmt.Sprintf("Recv from %d", r), err, mpi.ErrRank))
			_, err = c.Probe(ctx, r, 0)
			errs = append(errs, check(fmt.Sprintf("Probe %d", r), err, mpi.ErrRank))
			_, _, err = c.Sendrecv(ctx, r, 0, nil, 0, 0)
			errs = append(errs, check(fmt.Sprintf("Sendrecv to %d", r), err, mpi.ErrRank))
		}
		_, _, err := c.Recv(ctx, 0, -5)
		errs = append(errs,
			check("Send with tag -5", c.Send(ctx, 0, -5, nil), mpi.ErrTag),
			check("Send with AnyTag", c.Send(ctx, 0, mpi.AnyTag, nil), mpi.ErrTag),
			check("Send to AnySource", c.Send(ctx, mpi.AnySource, 0, nil), mpi.ErrRank),
			check("Recv with tag -5", err, mpi.ErrTag),
		)
		return errors.Join(errs...)
	})
}

func waitErr(ctx context.Context, r *mpi.Request) error {
	_, err := r.Wait(ctx)
	return err
}

// TestCancel: a withdrawn receive never takes a message; a withdrawn large
// send never reaches its receiver.
func TestCancel(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			r := c.Irecv(1, 0)
			if !r.Cancel() {
				return errors.New("Cancel of an unmatched receive returned false")
			}
			if _, err := r.Wait(ctx); !errors.Is(err, mpi.ErrCanceled) {
				return fmt.Errorf("canceled receive: %v", err)
			}
			if err := c.Send(ctx, 1, 9, nil); err != nil { // "go ahead"
				return err
			}
			b, _, err := c.Recv(ctx, 1, 0)
			if err != nil || string(b) != "one" {
				return fmt.Errorf("after Cancel: got %q, %v", b, err)
			}
			// Rank 1 now tries a large send with a short deadline; we do not
			// receive it until told, and then must see only the small one.
			if _, _, err := c.Recv(ctx, 1, 8); err != nil {
				return err
			}
			b, st, err := c.Recv(ctx, 1, mpi.AnyTag)
			if err != nil || string(b) != "after" {
				return fmt.Errorf("after a withdrawn send: got %d bytes tag %d, %v", len(b), st.Tag, err)
			}
			return nil
		}
		if _, _, err := c.Recv(ctx, 0, 9); err != nil {
			return err
		}
		if err := c.Send(ctx, 0, 0, []byte("one")); err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := c.Send(sctx, 0, 7, make([]byte, 4<<20)); !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("large send nobody receives: %v", err)
		}
		if err := c.Send(ctx, 0, 8, nil); err != nil {
			return err
		}
		return c.Send(ctx, 0, 6, []byte("after"))
	})
}

// TestAbort: one rank's Abort fails the others' blocked calls with
// ErrAborted, and the harness names the rank.
func TestAbort(t *testing.T) {
	var mu sync.Mutex
	var seen []error
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			// Once both others have posted their receive.
			for range 2 {
				if _, _, err := c.Recv(ctx, mpi.AnySource, 1); err != nil {
					return err
				}
			}
			c.Abort(3)
			return errors.New("Abort returned")
		}
		r := c.Irecv(mpi.AnySource, 0)
		if err := c.Send(ctx, 1, 1, nil); err != nil {
			return err
		}
		// Not ctx: the harness cancels it when rank 1 aborts.
		_, err := r.Wait(context.WithoutCancel(ctx))
		mu.Lock()
		seen = append(seen, err)
		mu.Unlock()
		return nil
	})
	if err == nil || err.Error() != "rank 1: called Abort(3)" {
		t.Errorf("World = %v, want rank 1's Abort", err)
	}
	for _, err := range seen {
		var ae *mpi.AbortError
		if !errors.Is(err, mpi.ErrAborted) || !errors.As(err, &ae) || ae.Rank != 1 || ae.Code != 3 {
			t.Errorf("blocked Recv returned %v, want an AbortError from rank 1 with code 3", err)
		}
	}
	if len(seen) != 2 {
		t.Errorf("%d ranks saw the abort, want 2", len(seen))
	}
}

// startServer runs a listening server on loopback for tests that need to
// control it.
func startServer(t testing.TB, token string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Authorization: token, MaxPending: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestConnectionLost: when the server goes away, a blocked Recv returns an
// error wrapping ErrConnLost at once, and so does every later call.
func TestConnectionLost(t *testing.T) {
	s := startServer(t, "secret")
	job := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	comms := make([]*mpi.Comm, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mpi.Init(ctx, mpi.WithJob(job, r, 2), mpi.WithNATS(s.ClientURL(), "secret"))
			if err != nil {
				t.Error(err)
			}
			comms[r] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for r, c := range comms {
		if err := c.Err(); err != nil {
			t.Errorf("rank %d: Err before the loss: %v, want nil", r, err)
		}
	}
	errc := make(chan error, 1)
	r := comms[0].Irecv(1, 0) // posted before the loss
	go func() {
		_, err := r.Wait(ctx)
		errc <- err
	}()
	start := time.Now()
	s.Shutdown()
	select {
	case err := <-errc:
		if !errors.Is(err, mpi.ErrConnLost) {
			t.Errorf("blocked Recv: %v, want ErrConnLost", err)
		}
		t.Logf("blocked Recv returned %v after %v", err, time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Recv did not return after the server went away")
	}
	// Rank 1 learns of the loss on its own connection, asynchronously.
	var err error
	wait.For(2*time.Second, func() bool { err = comms[1].Send(ctx, 0, 0, nil); return err != nil })
	if !errors.Is(err, mpi.ErrConnLost) {
		t.Errorf("Send after the loss: %v, want ErrConnLost", err)
	}
	for r, c := range comms {
		if err := c.Err(); !errors.Is(err, mpi.ErrConnLost) {
			t.Errorf("rank %d: Err after the loss: %v, want ErrConnLost", r, err)
		}
	}
	for _, c := range comms {
		c.Close()
	}
}

// TestInitMissingRank: a rank that never shows up makes Init fail on time,
// naming it; a wrong token is refused.
func TestInitMissingRank(t *testing.T) {
	s := startServer(t, "secret")
	job := uuid.NewString()
	ctx := context.Background()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	start := time.Now()
	for r := range 2 { // rank 2 of 3 never comes
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mpi.Init(ctx, mpi.WithJob(job, r, 3), mpi.WithNATS(s.ClientURL(), "secret"), mpi.WithTimeout(time.Second))
			if c != nil {
				c.Close()
			}
			errs[r] = err
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Init took %v with a 1s timeout", took)
	}
	if err := errs[0]; !errors.Is(err, mpi.ErrInit) || !bytes.Contains([]byte(err.Error()), []byte("ranks 2 of 3 never joined")) {
		t.Errorf("rank 0: %v", err)
	}
	if errs[1] == nil {
		t.Errorf("rank 1: Init succeeded in an incomplete job")
	}
	_, err := mpi.Init(ctx, mpi.WithJob(job, 0, 1), mpi.WithNATS(s.ClientURL(), "wrong"))
	if !errors.Is(err, mpi.ErrInit) {
		t.Errorf("wrong token: %v", err)
	}
	_, err = mpi.Init(ctx, mpi.WithJob("bad.job", 0, 1), mpi.WithNATS(s.ClientURL(), "secret"))
	if !errors.Is(err, mpi.ErrInit) {
		t.Errorf("bad job id: %v", err)
	}
}

// TestSingleton: outside gorun, Init gives a world of one, with no server,
// that can talk to itself.
func TestSingleton(t *testing.T) {
	if _, ok := os.LookupEnv(mpi.EnvRank); ok {
		t.Skip("running under gorun")
	}
	ctx := context.Background()
	c, err := mpi.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("singleton is rank %d of %d", c.Rank(), c.Size())
	}
	if err := c.Send(ctx, 0, 3, []byte("me")); err != nil {
		t.Fatal(err)
	}
	b, st, err := c.Recv(ctx, mpi.AnySource, mpi.AnyTag)
	if err != nil || string(b) != "me" || st.Source != 0 || st.Tag != 3 {
		t.Errorf("self message: %q %+v %v", b, st, err)
	}
	if err := c.Send(ctx, 1, 0, nil); !errors.Is(err, mpi.ErrRank) {
		t.Errorf("Send to rank 1 of 1: %v", err)
	}
	c.Close()
	if err := c.Send(ctx, 0, 0, nil); !errors.Is(err, mpi.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

// TestNoGoroutineLeak: a whole job leaves no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error { return caseRing(ctx, c) })
	if !wait.For(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		n := runtime.NumGoroutine()
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestRecvInto: a message lands in the caller's buffer (small or large, by
// chunks or by a single copy); one that does not fit is taken and dropped
// with ErrTruncate, and the next message arrives as usual.
func TestRecvInto(t *testing.T) {
	sizes := []int{0, 100, 64 << 10, 1<<20 + 3, 9<<20 + 1} // eager, eager, eager's edge, rendezvous in one chunk, in two
	for _, single := range []bool{true, false} {
		t.Run(fmt.Sprint("singlecopy=", single), func(t *testing.T) {
			mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
				if c.Rank() == 0 {
					for i, n := range sizes {
						if err := c.Send(ctx, 1, i, pattern(n, i)); err != nil {
							return err
						}
						// Too large for the receiver's buffer:
						if err := c.Send(ctx, 1, 100+i, pattern(n+1, i)); err != nil && !errors.Is(err, mpi.ErrCanceled) {
							return err
						}
					}
					return nil
				}
				buf := make([]byte, 9<<20+1)
				for i, n := range sizes {
					st, err := c.RecvInto(ctx, 0, i, buf[:n])
					if err != nil {
						return fmt.Errorf("%d bytes: %v", n, err)
					}
					if st.Count != n || !bytes.Equal(buf[:n], pattern(n, i)) {
						return fmt.Errorf("%d bytes: got a count of %d, or wrong bytes", n, st.Count)
					}
					r := c.IrecvInto(0, 100+i, buf[:n])
					if _, err := r.Wait(ctx); !errors.Is(err, mpi.ErrTruncate) {
						return fmt.Errorf("%d+1 bytes into %d: %v, want ErrTruncate", n, n, err)
					}
				}
				// The buffer's memory is the message's.
				r := c.IrecvInto(1, 7, buf)
				if err := c.Send(ctx, 1, 7, []byte("self")); err != nil {
					return err
				}
				if _, err := r.Wait(ctx); err != nil || &r.Data()[0] != &buf[0] || string(r.Data()) != "self" {
					return fmt.Errorf("IrecvInto from self: %q, %v; want the message in buf", r.Data(), err)
				}
				return nil
			}, mpi.WithSingleCopy(single))
		})
	}
}

// TestInitTwice: a second Init of a rank this process holds is an error
// (the two worlds would share one inbox, and each see every message); once
// the first is closed the rank can join again; singletons are separate.
func TestInitTwice(t *testing.T) {
	s := startServer(t, "secret")
	job := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	join := func() (*mpi.Comm, error) {
		return mpi.Init(ctx, mpi.WithJob(job, 0, 1), mpi.WithNATS(s.ClientURL(), "secret"))
	}
	c, err := join()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := join(); !errors.Is(err, mpi.ErrInit) || !strings.Contains(fmt.Sprint(err), "already joined") {
		if d != nil {
			d.Close()
		}
		t.Errorf("second Init: %v, want ErrInit naming the rank already joined", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = join()
	if err != nil {
		t.Fatalf("Init after Close: %v", err)
	}
	c.Close()

	a, err := mpi.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mpi.Init(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Send(ctx, 0, 3, []byte("a")); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	defer stop()
	if _, _, err := b.Recv(short, 0, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a singleton's Recv of a message sent on another singleton: %v, want a deadline", err)
	}
}

// TestCreditShortRendezvous: a receiver that leaves a whole credit share
// of a sender's messages unreceived while it waits for a later one (a
// receive by tag, out of the order sent) still gets the later one: a send
// short of eager credit goes as a rendezvous, which costs one frame. Before,
// the later message waited for credit that only the receives it blocked
// would give back.
func TestCreditShortRendezvous(t *testing.T) {
	const budget, limit = 4096, 1000
	share := creditShare(budget, limit, 2)
	k := int(share/(limit+mpi.FrameCost)) + 2 // more than the share holds
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			var reqs []*mpi.Request
			for i := range k {
				reqs = append(reqs, c.Isend(0, 0, pattern(limit, i)))
			}
			reqs = append(reqs, c.Isend(0, 1, pattern(limit, k)))
			return mpi.WaitAll(ctx, reqs...)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		got, _, err := c.Recv(ctx, 1, 1)
		if err != nil {
			return fmt.Errorf("the later message: %w", err)
		}
		if !bytes.Equal(got, pattern(limit, k)) {
			return errors.New("the later message arrived wrong")
		}
		return recvPatterns(ctx, c, 1, 0, limit, k)
	}, mpi.WithBuffers(budget, 2<<20), mpi.WithEagerLimit(limit))
}

// recvPatterns receives k messages of size bytes from src with tag, and
// checks that message i is pattern(size, i): all there, in order.
func recvPatterns(ctx context.Context, c *mpi.Comm, src, tag, size, k int) error {
	for i := range k {
		got, _, err := c.Recv(ctx, src, tag)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, pattern(size, i)) {
			return fmt.Errorf("message %d arrived wrong", i)
		}
	}
	return nil
}

// TestCreditReserve: eager messages that a receiver holds unreceived
// never take the whole credit, even when their sizes add up to it exactly:
// the part eager sends leave free still carries the RTS of a later
// message, which the receiver wants first. (Without the reserve, the
// sender has not a frame's credit left, queues the later message behind
// the ones the receiver does not take yet, and both wait forever.)
func TestCreditReserve(t *testing.T) {
	const limit = 1000
	share := creditShare(1, limit, 2) // the floor: two full eager messages
	k := int(share / (limit + mpi.FrameCost))
	if int64(k)*(limit+mpi.FrameCost) != share {
		t.Fatalf("%d messages of %d bytes do not fill the share of %d exactly", k, limit, share)
	}
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			var reqs []*mpi.Request
			for i := range k {
				reqs = append(reqs, c.Isend(0, 0, pattern(limit, i)))
			}
			reqs = append(reqs, c.Isend(0, 1, pattern(8, k)), c.Isend(0, 1, nil))
			return mpi.WaitAll(ctx, reqs...)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for i, want := range [][]byte{pattern(8, k), {}} {
			got, _, err := c.Recv(ctx, 1, 1)
			if err != nil {
				return fmt.Errorf("later message %d: %w", i, err)
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("later message %d arrived wrong", i)
			}
		}
		return recvPatterns(ctx, c, 1, 0, limit, k)
	}, mpi.WithBuffers(1, 2<<20), mpi.WithEagerLimit(limit))
}

// TestStoppedReceiverMemory: over the in-memory network, a receiver
// stopped while four ranks Isend it 200 messages of 60 KB and two of
// 4 MiB each never has more waiting for it than its eager budget (the
// network would drop it past that, as a NATS server drops a slow
// consumer): the credit holds the small ones at their senders, and the
// large ones wait there for grants the stopped rank cannot give. Resumed,
// it gets everything, whole and in order.
func TestStoppedReceiverMemory(t *testing.T) {
	const n, small, large, budget = 5, 200, 2, 1 << 20
	net := mpitest.NewNet(mpitest.Faults{Seed: 1, MaxPending: budget})
	posted := make(chan struct{}, n)
	body := func(src, i int) []byte {
		if i < small {
			return pattern(60_000, src*1000+i)
		}
		return pattern(4<<20, src*1000+i)
	}
	net.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil { // rank 0 is stopped
				return err
			}
			var reqs []*mpi.Request
			for i := range small + large {
				reqs = append(reqs, c.Isend(0, 5, body(c.Rank(), i)))
			}
			posted <- struct{}{}
			return mpi.WaitAll(ctx, reqs...)
		}
		net.Stop(0)
		for r := 1; r < n; r++ {
			if err := c.Send(ctx, r, 1, nil); err != nil {
				return err
			}
		}
		for range n - 1 {
			<-posted // every send has gone as far as it can
		}
		now, peak := net.Pending(0)
		t.Logf("stopped: %d bytes waiting (peak %d) of an eager budget of %d", now, peak, budget)
		if now < budget/2 {
			return fmt.Errorf("only %d bytes waited for the stopped rank: the flood did not fill its credit", now)
		}
		net.Resume(0)
		next := make([]int, n)
		for range (n - 1) * (small + large) {
			b, st, err := c.Recv(ctx, mpi.AnySource, 5)
			if err != nil {
				return err
			}
			if i := next[st.Source]; !bytes.Equal(b, body(st.Source, i)) {
				return fmt.Errorf("message %d from rank %d: %d bytes, content differs", i, st.Source, len(b))
			}
			next[st.Source]++
		}
		return nil
	}, mpi.WithBuffers(budget, 8<<20))
}

// TestCancelGivesWindowBack: a receive that granted its sender part of the
// rendezvous window, for a message the sender then withdraws before any
// chunk came, gives that part back: the window is whole again once the
// receive has failed. (Kept, it would shrink the window for good: a few
// withdrawn sends would stop every later rendezvous.) Single copies are
// off, so that the receiver grants; rank 0 gets no frame meanwhile, so
// that it sends no chunk.
func TestCancelGivesWindowBack(t *testing.T) {
	const window, size = 4 << 20, 16 << 20
	net := mpitest.NewNet(mpitest.Faults{Seed: 1})
	granted := make(chan struct{})
	net.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			net.Stop(0)
			r := c.Isend(1, 0, make([]byte, size))
			<-granted
			if !r.Cancel() {
				return errors.New("the send could not be withdrawn")
			}
			net.Resume(0)
			return nil
		}
		r := c.Irecv(0, 0)
		for c.WindowFree() == window { // until the RTS came and was granted
			if err := ctx.Err(); err != nil {
				return err
			}
			time.Sleep(100 * time.Microsecond)
		}
		close(granted)
		if _, err := r.Wait(ctx); !errors.Is(err, mpi.ErrCanceled) {
			return fmt.Errorf("the withdrawn message's receive: %v, want ErrCanceled", err)
		}
		if free := c.WindowFree(); free != window {
			return fmt.Errorf("after the withdrawn message the window has %d bytes free, want all %d", free, window)
		}
		return nil
	}, mpi.WithBuffers(64<<20, window), mpi.WithSingleCopy(false))
}
