package mpi_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// wantNull checks a Status from a ProcNull peer.
func wantNull(what string, st mpi.Status, b []byte) error {
	if st != (mpi.Status{Source: mpi.ProcNull, Tag: mpi.AnyTag}) || len(b) != 0 {
		return fmt.Errorf("%s from ProcNull: status %+v, %d bytes; want {ProcNull AnyTag 0}, none", what, st, len(b))
	}
	return nil
}

// TestProcNull: every point-to-point call with ProcNull as its peer
// completes at once, moving nothing, on the world and on a split; and a
// non-periodic shift (ProcNull at both ends of a line) passes values along
// with Sendrecv, with nothing left behind (Quiet).
func TestProcNull(t *testing.T) {
	mpitest.Run(t, 4, func(ctx context.Context, w *mpi.Comm) error {
		s, err := w.Split(ctx, w.Rank()%2, 0)
		if err != nil {
			return err
		}
		for _, c := range []*mpi.Comm{w, s} {
			if err := c.Send(ctx, mpi.ProcNull, 3, []byte("lost")); err != nil {
				return fmt.Errorf("Send: %w", err)
			}
			if err := c.Send(ctx, mpi.ProcNull, 3, make([]byte, 1<<20)); err != nil {
				return fmt.Errorf("Send large: %w", err)
			}
			b, st, err := c.Recv(ctx, mpi.ProcNull, 3)
			if err != nil {
				return fmt.Errorf("Recv: %w", err)
			}
			if err := wantNull("Recv", st, b); err != nil {
				return err
			}
			if _, err := c.Isend(mpi.ProcNull, 1, []byte("x")).Wait(ctx); err != nil {
				return fmt.Errorf("Isend: %w", err)
			}
			r := c.Irecv(mpi.ProcNull, mpi.AnyTag)
			if st, ok, err := r.Test(); !ok || err != nil {
				return fmt.Errorf("Irecv from ProcNull not complete at once: %v, %v", ok, err)
			} else if err := wantNull("Irecv", st, r.Data()); err != nil {
				return err
			}
			st, err = c.RecvInto(ctx, mpi.ProcNull, 0, make([]byte, 8))
			if err != nil {
				return fmt.Errorf("RecvInto: %w", err)
			}
			if err := wantNull("RecvInto", st, nil); err != nil {
				return err
			}
			r = c.IrecvInto(mpi.ProcNull, 0, make([]byte, 8))
			if st, err := r.Wait(ctx); err != nil {
				return fmt.Errorf("IrecvInto: %w", err)
			} else if err := wantNull("IrecvInto", st, r.Data()); err != nil {
				return err
			}
			if err := mpi.SendSlice(ctx, c, mpi.ProcNull, 0, []float64{1, 2}); err != nil {
				return fmt.Errorf("SendSlice: %w", err)
			}
			f, st, err := mpi.RecvSlice[float64](ctx, c, mpi.ProcNull, 0)
			if err != nil || len(f) != 0 || st.Source != mpi.ProcNull {
				return fmt.Errorf("RecvSlice: %v, %+v, %v", f, st, err)
			}
			if err := mpi.SendValue(ctx, c, mpi.ProcNull, 0, "x"); err != nil {
				return fmt.Errorf("SendValue: %w", err)
			}
			v, st, err := mpi.RecvValue[string](ctx, c, mpi.ProcNull, 0)
			if err != nil || v != "" || st.Source != mpi.ProcNull {
				return fmt.Errorf("RecvValue: %q, %+v, %v", v, st, err)
			}
			if st, err := c.Probe(ctx, mpi.ProcNull, 0); err != nil || st.Source != mpi.ProcNull {
				return fmt.Errorf("Probe: %+v, %v", st, err)
			}
			if st, ok, err := c.Iprobe(mpi.ProcNull, 0); err != nil || !ok || st.Source != mpi.ProcNull {
				return fmt.Errorf("Iprobe: %+v, %v, %v", st, ok, err)
			}
			if err := c.Ssend(ctx, mpi.ProcNull, 0, []byte("x")); err != nil {
				return fmt.Errorf("Ssend: %w", err)
			}
			// A line, not a ring: the ends shift to and from ProcNull.
			left, right := c.Rank()-1, c.Rank()+1
			if left < 0 {
				left = mpi.ProcNull
			}
			if right == c.Size() {
				right = mpi.ProcNull
			}
			b, st, err = c.Sendrecv(ctx, right, 9, []byte{byte(c.Rank())}, left, 9)
			if err != nil {
				return fmt.Errorf("Sendrecv: %w", err)
			}
			if left == mpi.ProcNull {
				if err := wantNull("Sendrecv", st, b); err != nil {
					return err
				}
			} else if len(b) != 1 || int(b[0]) != left || st.Source != left {
				return fmt.Errorf("Sendrecv: got %v from %d, want [%d]", b, st.Source, left)
			}
			if _, err := c.Isend(-3, 0, nil).Wait(ctx); !errors.Is(err, mpi.ErrRank) {
				return fmt.Errorf("Isend to -3: %v, want ErrRank", err)
			}
			if _, _, err := c.Recv(ctx, -3, 0); !errors.Is(err, mpi.ErrRank) {
				return fmt.Errorf("Recv from -3: %v, want ErrRank", err)
			}
			if err := mpitest.Quiet(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestIprobe: Iprobe never blocks, reports a message once it has arrived,
// and leaves it to Recv.
func TestIprobe(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, 1); err != nil { // rank 0 has probed an empty queue
				return err
			}
			return c.Send(ctx, 0, 2, []byte("abc"))
		}
		if _, ok, err := c.Iprobe(mpi.AnySource, mpi.AnyTag); ok || err != nil {
			return fmt.Errorf("Iprobe before any send: %v, %v", ok, err)
		}
		if err := c.Send(ctx, 1, 1, nil); err != nil {
			return err
		}
		for {
			st, ok, err := c.Iprobe(1, 2)
			if err != nil {
				return err
			}
			if ok {
				if st != (mpi.Status{Source: 1, Tag: 2, Count: 3}) {
					return fmt.Errorf("Iprobe: %+v", st)
				}
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			runtime.Gosched()
		}
		b, _, err := c.Recv(ctx, 1, 2)
		if string(b) != "abc" {
			return fmt.Errorf("Recv after Iprobe: %q, %v", b, err)
		}
		return err
	})
}

// TestMprobeConcurrent is the acceptance test of matched probes: two
// goroutines of rank 0 probe AnySource with Mprobe and receive through the
// handles, 10,000 messages from 4 senders (one in 97 large enough to go
// as a rendezvous): none lost, none received twice, each intact.
func TestMprobeConcurrent(t *testing.T) {
	const senders, perSender = 4, 2500
	mpitest.Run(t, senders+1, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			for i := range perSender {
				n := 8
				if i%97 == 96 {
					n = 100 << 10
				}
				b := make([]byte, n)
				b[0], b[1], b[2] = byte(c.Rank()), byte(i), byte(i>>8)
				if err := c.Send(ctx, 0, i%5, b); err != nil {
					return err
				}
			}
			return nil
		}
		var mu sync.Mutex
		seen := make(map[[2]int]int)
		var total atomic.Int64
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				errs <- func() error {
					for {
						m, st, err := c.Mprobe(pctx, mpi.AnySource, mpi.AnyTag)
						if err != nil {
							if total.Load() == senders*perSender && pctx.Err() != nil {
								return nil
							}
							return err
						}
						b, err := m.Recv()
						if err != nil {
							return err
						}
						if len(b) != st.Count || int(b[0]) != st.Source {
							return fmt.Errorf("message of %d bytes from %d; status %+v", len(b), b[0], st)
						}
						i := int(b[1]) | int(b[2])<<8
						mu.Lock()
						seen[[2]int{st.Source, i}]++
						twice := seen[[2]int{st.Source, i}] > 1
						mu.Unlock()
						if twice {
							return fmt.Errorf("message %d from rank %d received twice", i, st.Source)
						}
						if total.Add(1) == senders*perSender {
							stop()
						}
					}
				}()
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				return err
			}
		}
		for s := 1; s <= senders; s++ {
			for i := range perSender {
				if n := seen[[2]int{s, i}]; n != 1 {
					return fmt.Errorf("message %d from rank %d received %d times", i, s, n)
				}
			}
		}
		if len(seen) != senders*perSender {
			return fmt.Errorf("%d distinct messages, want %d", len(seen), senders*perSender)
		}
		return nil
	})
}

// TestMessageRecvOnce: a matched message is gone from matching (Iprobe no
// longer sees it), Recv takes it once, and a second Recv is an error;
// Improbe returns false on an empty queue.
func TestMessageRecvOnce(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			if err := c.Send(ctx, 0, 4, []byte("only")); err != nil {
				return err
			}
			return c.Send(ctx, 0, 4, make([]byte, 200<<10))
		}
		if m, _, ok, err := c.Improbe(1, 5); ok || m != nil || err != nil {
			return fmt.Errorf("Improbe with nothing sent: %v, %v", ok, err)
		}
		m, st, err := c.Mprobe(ctx, 1, 4)
		if err != nil {
			return err
		}
		if st.Count != 4 {
			return fmt.Errorf("Mprobe: %+v", st)
		}
		// The large one may not have arrived yet: wait for it with Probe,
		// which must not see the matched small one.
		st2, err := c.Probe(ctx, 1, 4)
		if err != nil || st2.Count != 200<<10 {
			return fmt.Errorf("Probe after Mprobe: %+v, %v; want the second message", st2, err)
		}
		b, err := m.Recv()
		if string(b) != "only" || err != nil {
			return fmt.Errorf("Recv: %q, %v", b, err)
		}
		if _, err := m.Recv(); err == nil {
			return errors.New("a second Recv on a Message succeeded")
		}
		var big *mpi.Message
		for big == nil {
			m, _, ok, err := c.Improbe(mpi.AnySource, mpi.AnyTag)
			if err != nil {
				return err
			}
			if ok {
				big = m
			}
		}
		if b, err := big.Recv(); err != nil || len(b) != 200<<10 {
			return fmt.Errorf("large Recv: %d bytes, %v", len(b), err)
		}
		if _, ok, _ := c.Iprobe(mpi.AnySource, mpi.AnyTag); ok {
			return errors.New("a message is left after both were received")
		}
		return nil
	})
}

// TestTestCalls: Request.Test, TestAll and TestAny never block, report
// completion, skip nil entries, and TestAny makes what it returns inactive.
func TestTestCalls(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, 0); err != nil {
				return err
			}
			if err := c.Send(ctx, 0, 2, []byte("two")); err != nil {
				return err
			}
			_, _, err := c.Recv(ctx, 0, 9) // stay until rank 0 is done
			return err
		}
		r1, r2 := c.Irecv(1, 1), c.Irecv(1, 2)
		reqs := []*mpi.Request{nil, r1, r2}
		if _, ok, err := r2.Test(); ok || err != nil {
			return fmt.Errorf("Test before the send: %v, %v", ok, err)
		}
		if ok, err := mpi.TestAll(reqs...); ok || err != nil {
			return fmt.Errorf("TestAll before the send: %v, %v", ok, err)
		}
		if i, _, ok, err := mpi.TestAny(reqs...); i != -1 || ok || err != nil {
			return fmt.Errorf("TestAny before the send: %d, %v, %v", i, ok, err)
		}
		if err := c.Send(ctx, 1, 0, nil); err != nil {
			return err
		}
		if _, err := r2.Wait(ctx); err != nil {
			return err
		}
		if st, ok, err := r2.Test(); !ok || err != nil || st.Tag != 2 {
			return fmt.Errorf("Test after Wait: %+v, %v, %v", st, ok, err)
		}
		i, st, ok, err := mpi.TestAny(reqs...)
		if i != 2 || !ok || err != nil || st.Count != 3 {
			return fmt.Errorf("TestAny: %d, %+v, %v, %v; want 2", i, st, ok, err)
		}
		if i, _, ok, _ := mpi.TestAny(reqs...); i != -1 || ok {
			return fmt.Errorf("TestAny again: %d, %v; want -1, false (r2 inactive, r1 pending)", i, ok)
		}
		r1.Cancel()
		if ok, err := mpi.TestAll(reqs...); !ok || !errors.Is(err, mpi.ErrCanceled) {
			return fmt.Errorf("TestAll after Cancel: %v, %v", ok, err)
		}
		mpi.TestAny(reqs...) // takes r1
		if i, _, ok, _ := mpi.TestAny(reqs...); i != -1 || !ok {
			return fmt.Errorf("TestAny with none active: %d, %v; want -1, true", i, ok)
		}
		return c.Send(ctx, 1, 9, nil)
	})
}

// TestWaitAnyFarm: a farm of 1000 receives, completed one by one by
// WaitAny on the same slice (with nil entries, MPI's null request): each is
// returned once, then -1; and a WaitAny blocked on 1000 requests runs no
// goroutine per request.
func TestWaitAnyFarm(t *testing.T) {
	const n = 1000
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, n); err != nil { // rank 0 is waiting
				return err
			}
			for i := range n {
				if err := c.Send(ctx, 0, n-1-i, []byte{byte(i)}); err != nil {
					return err
				}
			}
			return nil
		}
		reqs := make([]*mpi.Request, 0, n+2)
		reqs = append(reqs, nil)
		for i := range n {
			reqs = append(reqs, c.Irecv(1, i))
		}
		reqs = append(reqs, nil)
		before := runtime.NumGoroutine()
		type result struct {
			i   int
			err error
		}
		first := make(chan result, 1)
		go func() {
			i, _, err := mpi.WaitAny(ctx, reqs...)
			first <- result{i, err}
		}()
		// The old WaitAny started a watcher per request at once: give it
		// the chance to show, and see none.
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if g := runtime.NumGoroutine(); g > before+n/2 {
				return fmt.Errorf("%d goroutines while WaitAny waits on %d requests, %d before", g, n, before)
			}
			runtime.Gosched()
		}
		if err := c.Send(ctx, 1, n, nil); err != nil {
			return err
		}
		seen := make(map[int]bool)
		r := <-first
		for ; r.i != -1; r.i, _, r.err = mpi.WaitAny(ctx, reqs...) {
			if r.err != nil {
				return r.err
			}
			if r.i < 1 || r.i > n || seen[r.i] {
				return fmt.Errorf("WaitAny returned %d (again, or a nil entry)", r.i)
			}
			seen[r.i] = true
		}
		if r.err != nil {
			return r.err
		}
		if len(seen) != n {
			return fmt.Errorf("WaitAny returned %d requests, want %d", len(seen), n)
		}
		return nil
	})
}

// TestWaitSome: WaitSome blocks until some request completes, returns all
// that have (skipping nil entries and those already returned), and nil
// once none is active; a ctx that ends first is its error.
func TestWaitSome(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			for _, tag := range []int{1, 2, 3} {
				if err := c.Send(ctx, 0, tag, []byte{byte(tag)}); err != nil {
					return err
				}
			}
			_, _, err := c.Recv(ctx, 0, 9)
			if err != nil {
				return err
			}
			return c.Send(ctx, 0, 4, []byte{4})
		}
		reqs := []*mpi.Request{c.Irecv(1, 1), nil, c.Irecv(1, 2), c.Irecv(1, 3), c.Irecv(1, 4)}
		for _, i := range []int{0, 2, 3} {
			if _, err := reqs[i].Wait(ctx); err != nil {
				return err
			}
		}
		idx, err := mpi.WaitSome(ctx, reqs...)
		if err != nil || fmt.Sprint(idx) != "[0 2 3]" {
			return fmt.Errorf("WaitSome: %v, %v; want [0 2 3]", idx, err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if idx, err := mpi.WaitSome(short, reqs...); !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("WaitSome with only an unsent message left: %v, %v", idx, err)
		}
		if err := c.Send(ctx, 1, 9, nil); err != nil {
			return err
		}
		idx, err = mpi.WaitSome(ctx, reqs...)
		if err != nil || fmt.Sprint(idx) != "[4]" {
			return fmt.Errorf("WaitSome: %v, %v; want [4]", idx, err)
		}
		if idx, err := mpi.WaitSome(ctx, reqs...); idx != nil || err != nil {
			return fmt.Errorf("WaitSome with none active: %v, %v", idx, err)
		}
		return nil
	})
}

// TestSsend: an Issend is not complete before its receive matches, and is
// after (to another rank, empty, small and large, and to itself); an Ssend
// whose receive is never posted blocks until its ctx ends, and the message
// is withdrawn, empty or not.
func TestSsend(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		sizes := []int{0, 10, 300 << 10}
		if c.Rank() == 1 {
			for _, n := range sizes {
				if _, _, err := c.Recv(ctx, 0, 1); err != nil { // go
					return err
				}
				b, _, err := c.Recv(ctx, 0, 5)
				if err != nil || len(b) != n {
					return fmt.Errorf("Recv: %d bytes, %v; want %d", len(b), err, n)
				}
			}
			// Rank 0's Ssends on tag 6 are never received; after they
			// gave up, one on tag 7 is.
			if _, _, err := c.Recv(ctx, 0, 2); err != nil {
				return err
			}
			if _, ok, _ := c.Iprobe(0, 6); ok {
				return errors.New("a withdrawn Ssend is still there")
			}
			_, _, err := c.Recv(ctx, 0, 7)
			return err
		}
		for _, n := range sizes {
			r := c.Issend(1, 5, make([]byte, n))
			if _, ok, _ := r.Test(); ok {
				return fmt.Errorf("Issend of %d bytes complete before the receiver was told to receive", n)
			}
			if err := c.Send(ctx, 1, 1, nil); err != nil {
				return err
			}
			if _, err := r.Wait(ctx); err != nil {
				return err
			}
		}
		// To itself: complete only once this rank receives it.
		r := c.Issend(0, 3, []byte("me"))
		if _, ok, _ := r.Test(); ok {
			return errors.New("Issend to self complete before its receive")
		}
		if b, _, err := c.Recv(ctx, 0, 3); string(b) != "me" || err != nil {
			return fmt.Errorf("Recv from self: %q, %v", b, err)
		}
		if _, ok, err := r.Test(); !ok || err != nil {
			return fmt.Errorf("Issend to self after its receive: %v, %v", ok, err)
		}
		// Never received: Ssend blocks until ctx ends, and withdraws it.
		for _, dst := range []int{0, 1} {
			for _, msg := range [][]byte{[]byte("never"), nil} {
				short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				err := c.Ssend(short, dst, 6, msg)
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("Ssend of %d bytes to %d with no receive: %v, want the deadline", len(msg), dst, err)
				}
			}
		}
		if _, ok, _ := c.Iprobe(0, 6); ok {
			return errors.New("a withdrawn Ssend to self is still there")
		}
		if err := c.Send(ctx, 1, 2, nil); err != nil {
			return err
		}
		return c.Ssend(ctx, 1, 7, []byte("yes"))
	})
}

// TestMprobeWithdrawn: a large message matched by Mprobe and then withdrawn
// by its sender (a canceled Issend) makes the Message's Recv fail with
// ErrCanceled instead of waiting for data that never comes.
func TestMprobeWithdrawn(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			r := c.Issend(0, 1, make([]byte, 200<<10))
			if _, _, err := c.Recv(ctx, 0, 2); err != nil { // rank 0 has probed it
				return err
			}
			if !r.Cancel() {
				return errors.New("Cancel of an Issend whose receive never matched failed")
			}
			if err := c.Send(ctx, 0, 3, nil); err != nil { // after the withdrawal, in order
				return err
			}
			return mpitest.Quiet(ctx, c)
		}
		m, st, err := c.Mprobe(ctx, 1, 1)
		if err != nil || st.Count != 200<<10 {
			return fmt.Errorf("Mprobe: %+v, %v", st, err)
		}
		if err := c.Send(ctx, 1, 2, nil); err != nil {
			return err
		}
		if _, _, err := c.Recv(ctx, 1, 3); err != nil {
			return err
		}
		if b, err := m.Recv(); !errors.Is(err, mpi.ErrCanceled) {
			return fmt.Errorf("Recv of a withdrawn message: %d bytes, %v; want ErrCanceled", len(b), err)
		}
		return mpitest.Quiet(ctx, c) // nothing left of the message on either side
	})
}

// TestIprobeSplit: Iprobe and a waiting Probe from a rank of a split
// communicator whose world rank differs find the sender by its rank in
// the split (the lost-peer check once took the world rank for it, and
// indexed past the split's group).
func TestIprobeSplit(t *testing.T) {
	mpitest.Run(t, 4, func(ctx context.Context, w *mpi.Comm) error {
		c, err := w.Split(ctx, w.Rank()%2, 0) // odd: world 1 and 3 are ranks 0 and 1
		if err != nil {
			return err
		}
		if _, ok, err := c.Iprobe(1-c.Rank(), 5); ok || err != nil { // tag 5: never sent
			return fmt.Errorf("Iprobe with nothing sent: %v, %v", ok, err)
		}
		if err := c.Send(ctx, 1-c.Rank(), 0, []byte("x")); err != nil {
			return err
		}
		if st, err := c.Probe(ctx, 1-c.Rank(), 0); err != nil || st.Source != 1-c.Rank() {
			return fmt.Errorf("Probe: %+v, %v", st, err)
		}
		_, _, err = c.Recv(ctx, 1-c.Rank(), 0)
		return err
	})
}
