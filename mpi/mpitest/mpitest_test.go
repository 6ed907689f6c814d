package mpitest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

func TestWorldNamesTheFailingRank(t *testing.T) {
	boom := errors.New("boom")
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 2 {
			return boom
		}
		_, _, err := c.Recv(ctx, 2, 0) // never comes: cancelled by rank 2's failure
		return err
	})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "rank 2: ") {
		t.Errorf("World = %v, want rank 2's error", err)
	}
}

func TestWorldPanic(t *testing.T) {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			panic("oops")
		}
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "rank 1: panic: oops") {
		t.Errorf("World = %v, want rank 1's panic", err)
	}
}

func TestWorldDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := mpitest.World(ctx, 2, func(ctx context.Context, c *mpi.Comm) error {
		_, _, err := c.Recv(ctx, mpi.AnySource, 0) // a deadlock
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("World = %v after %v, want a deadline error soon", err, time.Since(start))
	}
}

func TestWorldBadSize(t *testing.T) {
	if err := mpitest.World(context.Background(), 0, nil); err == nil {
		t.Error("World with 0 ranks succeeded")
	}
}

func ExampleWorld() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			fmt.Println("ranks:", c.Size())
		}
		return nil
	})
	fmt.Println("error:", err)
	// Output:
	// ranks: 3
	// error: <nil>
}

// The rank that calls Abort is the one World names, even when another rank
// reports the abort (an error wrapping ErrAborted) first, as it may: Abort
// tells the other ranks before it ends its own.
func TestWorldNamesTheAbortingRank(t *testing.T) {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		switch c.Rank() {
		case 0:
			if _, _, err := c.Recv(ctx, 1, 0); err != nil { // rank 1 is through Init
				return err
			}
			return fmt.Errorf("recv: %w", mpi.ErrAborted) // the abort's consequence, reported first
		case 1:
			if err := c.Send(ctx, 0, 0, nil); err != nil {
				return err
			}
			<-ctx.Done() // rank 0 has reported
			c.Abort(3)
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if err == nil || err.Error() != "rank 1: called Abort(3)" {
		t.Errorf("World = %v, want rank 1: called Abort(3)", err)
	}
}

// A job over the in-memory network, with frames delayed and reordered
// across senders: each sender's messages still arrive in the order sent.
func ExampleNet_World() {
	net := mpitest.NewNet(mpitest.Faults{Seed: 1, MaxDelay: time.Millisecond, Reorder: true})
	err := net.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			for i := range 3 {
				if err := c.Send(ctx, 0, 0, []byte{byte(c.Rank()), byte(i)}); err != nil {
					return err
				}
			}
			return nil
		}
		next := map[byte]byte{}
		for range 6 {
			b, _, err := c.Recv(ctx, mpi.AnySource, 0)
			if err != nil {
				return err
			}
			if b[1] != next[b[0]] {
				return fmt.Errorf("from rank %d: message %d, want %d", b[0], b[1], next[b[0]])
			}
			next[b[0]]++
		}
		fmt.Println("in order from each sender:", next[1], next[2])
		return nil
	})
	fmt.Println("error:", err)
	// Output:
	// in order from each sender: 3 3
	// error: <nil>
}

// Cutting a rank off fails what its peers wait for with ErrPeerLost.
func ExampleNet_Cut() {
	net := mpitest.NewNet(mpitest.Faults{})
	err := net.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 1 {
			_, _, err := c.Recv(ctx, 0, 0) // until the cut
			if !errors.Is(err, mpi.ErrConnLost) {
				return err
			}
			return nil
		}
		r := c.Irecv(1, 0)
		net.Cut(1)
		_, err := r.Wait(ctx)
		fmt.Println(errors.Is(err, mpi.ErrPeerLost))
		return nil
	})
	fmt.Println("error:", err)
	// Output:
	// true
	// error: <nil>
}

// Quiet after a case: every message was received, nothing is left.
func ExampleQuiet() {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		q, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			c.Isend(1, 0, []byte("left behind")) // never waited for: still a message sent
		}
		if err := mpitest.Quiet(ctx, q); err != nil {
			fmt.Println("not quiet")
		}
		if c.Rank() == 1 {
			if _, _, err := c.Recv(ctx, 0, 0); err != nil {
				return err
			}
		}
		return mpitest.Quiet(ctx, q)
	})
	fmt.Println("error:", err)
	// Output:
	// not quiet
	// error: <nil>
}
