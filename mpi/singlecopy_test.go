package mpi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// exchangeLarge has every rank send a large message to the next rank and a
// large SendAll from rank 1, and checks every byte that arrives.
func exchangeLarge(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	const size = 3<<20 + 5
	req := c.Isend((r+1)%n, 1, pattern(size, r))
	b, _, err := c.Recv(ctx, (r+n-1)%n, 1)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, pattern(size, (r+n-1)%n)) {
		return fmt.Errorf("rank %d: the message from rank %d is corrupt", r, (r+n-1)%n)
	}
	if _, err := req.Wait(ctx); err != nil {
		return err
	}
	if r == 1%n {
		return c.SendAll(ctx, 2, pattern(size, 99))
	}
	b, _, err = c.Recv(ctx, 1%n, 2)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, pattern(size, 99)) {
		return fmt.Errorf("rank %d: the SendAll from rank 1 is corrupt", r)
	}
	return nil
}

// counting returns a read hook that counts single copies (probes of one
// byte apart) and does them for real.
func counting(copies *atomic.Int64) mpi.Option {
	return countingProbes(copies, nil)
}

// countingProbes is counting that also counts the probes the system
// refused.
func countingProbes(copies, refused *atomic.Int64) mpi.Option {
	return mpi.WithReadHook(func(pid int, addr uint64, buf []byte) error {
		err := mpi.ReadRemote(pid, addr, buf)
		switch {
		case len(buf) > 1:
			copies.Add(1)
		case err != nil && refused != nil:
			refused.Add(1)
		}
		return err
	})
}

// selfReadable reports whether this system lets a process use
// process_vm_readv at all (a seccomp filter may forbid it): then goroutine
// ranks of one process copy large messages from each other.
func selfReadable() bool {
	var dst [8]byte
	err := mpi.ReadRemote(os.Getpid(), uint64(uintptr(unsafe.Pointer(&probeSource[0]))), dst[:])
	return err == nil && dst[0] == 42
}

// needLinux skips t off Linux: single copies are Linux's process_vm_readv
// (elsewhere every message goes through the bus, as TestSingleCopy's
// on=false case and the conformance suites check).
func needLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("single copies need Linux (process_vm_readv)")
	}
}

// probeSource is what selfReadable reads: a package variable, since a
// goroutine's stack (and a local array on it) may move once its address is
// a mere number.
var probeSource = [8]byte{42}

// TestSingleCopy: large messages between ranks of one machine are copied
// straight out of the sender's memory (one copy per receiver and message),
// and not at all with WithSingleCopy(false); either way every byte
// arrives.
func TestSingleCopy(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("on=", on), func(t *testing.T) {
			if on {
				needLinux(t)
			}
			var copies atomic.Int64
			mpitest.Run(t, 4, exchangeLarge, counting(&copies), mpi.WithSingleCopy(on))
			want := int64(0)
			if on && selfReadable() {
				want = 4 + 3 // the ring, and the SendAll at three ranks
			} else if on {
				t.Log("this system forbids process_vm_readv: every message goes through the bus")
			}
			if got := copies.Load(); got != want {
				t.Errorf("%d single copies, want %d", got, want)
			}
		})
	}
}

// TestSingleCopyRefused: where the system refuses a rank access to another's
// memory (as Yama's ptrace_scope may), messages go in chunks through the
// bus, after one try per peer.
func TestSingleCopyRefused(t *testing.T) {
	needLinux(t)
	var tries atomic.Int64
	refuse := mpi.WithReadHook(func(int, uint64, []byte) error {
		tries.Add(1)
		return syscall.EPERM
	})
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		for range 3 {
			if err := exchangeLarge(ctx, c); err != nil {
				return err
			}
		}
		return nil
	}, refuse)
	// Each rank tries its left neighbour, and the three others try rank 1;
	// rank 2's left neighbour is rank 1: 4 + 2 peers in all.
	if got := tries.Load(); got != 6 {
		t.Errorf("%d tries, want one per pair that talks (6)", got)
	}
}

// withRanks runs fn on n ranks of a job, each with its own options.
func withRanks(t *testing.T, n int, opts func(rank int) []mpi.Option, fn func(ctx context.Context, c *mpi.Comm) error) {
	t.Helper()
	s := startServer(t, "secret")
	job := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := append([]mpi.Option{mpi.WithJob(job, r, n), mpi.WithNATS(s.ClientURL(), "secret")}, opts(r)...)
			c, err := mpi.Init(ctx, o...)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := fn(ctx, c); err != nil {
				t.Errorf("rank %d: %v", r, err)
			}
		}()
	}
	wg.Wait()
}

// TestSingleCopyMixed: a SendAll reaches some ranks by single copies and the
// others (here rank 2, which may not read the others' memory) by chunks.
func TestSingleCopyMixed(t *testing.T) {
	needLinux(t)
	var copies atomic.Int64
	withRanks(t, 4, func(r int) []mpi.Option {
		if r == 2 {
			return []mpi.Option{mpi.WithReadHook(func(int, uint64, []byte) error { return syscall.EPERM })}
		}
		return []mpi.Option{counting(&copies)}
	}, exchangeLarge)
	want := int64(3 + 2) // three of the ring, two of the SendAll
	if !selfReadable() {
		want = 0
	}
	if got := copies.Load(); got != want {
		t.Errorf("%d single copies, want %d", got, want)
	}
}

// TestSingleCopyFails: a copy that fails after the first try succeeded (the
// sender's memory went away) fails the receive and the send, with errors
// that say so, and nothing hangs.
func TestSingleCopyFails(t *testing.T) {
	needLinux(t)
	if !selfReadable() {
		t.Skip("this system forbids process_vm_readv, so no single copy starts, nor fails")
	}
	broken := mpi.WithReadHook(func(pid int, addr uint64, buf []byte) error {
		if len(buf) == 1 {
			return mpi.ReadRemote(pid, addr, buf)
		}
		return syscall.EFAULT
	})
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		switch c.Rank() {
		case 0:
			err := c.Send(ctx, 1, 0, make([]byte, 1<<20))
			var re *mpi.RankError
			if !errors.As(err, &re) || re.Rank != 1 {
				return fmt.Errorf("send whose copy failed: %v, want a RankError naming rank 1", err)
			}
			if err := c.SendAll(ctx, 1, make([]byte, 1<<20)); !errors.As(err, &re) {
				return fmt.Errorf("SendAll whose copies failed: %v, want a RankError", err)
			}
		case 1:
			if _, _, err := c.Recv(ctx, 0, 0); err == nil {
				return errors.New("a receive whose copy failed succeeded")
			}
			fallthrough
		default:
			if _, _, err := c.Recv(ctx, 0, 1); err == nil {
				return errors.New("a SendAll receive whose copy failed succeeded")
			}
		}
		return nil
	}, broken)
}

// TestSingleCopyReceiverGone: a blocking send whose receiver started to
// copy it and never answers (it died, say) still returns soon after its
// ctx ends, and so does the receive.
func TestSingleCopyReceiverGone(t *testing.T) {
	needLinux(t)
	if !selfReadable() {
		t.Skip("this system forbids process_vm_readv, so no single copy starts")
	}
	release := make(chan struct{})
	defer close(release)
	hung := mpi.WithReadHook(func(pid int, addr uint64, buf []byte) error {
		if len(buf) == 1 {
			return mpi.ReadRemote(pid, addr, buf)
		}
		<-release // the copy never ends while the test runs
		return syscall.EFAULT
	})
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		var err error
		if c.Rank() == 0 {
			err = c.Send(wctx, 1, 0, make([]byte, 1<<20))
		} else {
			_, _, err = c.Recv(wctx, 0, 0)
		}
		// The sender's ctx ends, or the receiver's first, which then
		// leaves: either ends the send.
		if !errors.Is(err, context.DeadlineExceeded) && (c.Rank() == 1 || !errors.Is(err, mpi.ErrPeerLost)) {
			return fmt.Errorf("got %v, want DeadlineExceeded (or ErrPeerLost on rank 0)", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			return fmt.Errorf("returned after %v", d)
		}
		return nil
	}, hung)
}
