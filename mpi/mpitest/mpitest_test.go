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
