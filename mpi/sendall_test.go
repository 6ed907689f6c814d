package mpi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// caseSendAll: every rank in turn sends messages of every protocol size to
// all the others with SendAll, twice on one tag; the others receive them in
// order, byte-exact.
func caseSendAll(ctx context.Context, c *mpi.Comm) error {
	sizes := []int{0, 1, 5000, 64 << 10, 64<<10 + 1, 1<<20 + 7}
	roots := []int{0}
	if c.Size() > 1 {
		roots = append(roots, c.Size()-1)
	}
	for _, root := range roots {
		for _, sz := range sizes {
			if c.Rank() == root {
				for k := range 2 {
					if err := c.SendAll(ctx, 81, pattern(sz, root+k)); err != nil {
						return fmt.Errorf("root %d, size %d: %w", root, sz, err)
					}
				}
				continue
			}
			for k := range 2 {
				b, st, err := c.Recv(ctx, root, 81)
				if err != nil {
					return fmt.Errorf("from %d, size %d: %w", root, sz, err)
				}
				if st.Count != sz || !bytes.Equal(b, pattern(sz, root+k)) {
					return fmt.Errorf("from %d, size %d, message %d: got %d bytes, content differs", root, sz, k, len(b))
				}
			}
		}
	}
	return nil
}

func TestSendAll(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				if err := caseSendAll(ctx, c); err != nil {
					return fmt.Errorf("world: %w", err)
				}
				d, err := c.Dup(ctx)
				if err != nil {
					return err
				}
				if err := caseSendAll(ctx, d); err != nil {
					return fmt.Errorf("dup: %w", err)
				}
				s, err := c.Split(ctx, c.Rank()%2, c.Rank()) // not the whole world: one send per rank
				if err != nil {
					return err
				}
				if err := caseSendAll(ctx, s); err != nil {
					return fmt.Errorf("split: %w", err)
				}
				return nil
			})
		})
	}
}

// TestSendAllWithoutCredit: with tiny eager budgets most SendAll calls find
// some peer without credit and wait for it: nothing is lost or reordered.
// Rank 2 receives nothing until rank 0 has sent all it can; the others
// receive at once, and rank 0 sends each message only once they have given
// back the credit for the ones before: a SendAll that checked the credit of
// fewer peers than all would overrun rank 2's.
func TestSendAllWithoutCredit(t *testing.T) {
	const n, budget, eagerLimit = 4, 4096, 1000
	stats := make([]mpi.FlowStats, n)
	var sent atomic.Int64 // SendAll calls rank 0 has made
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		defer func() { stats[c.Rank()] = c.FlowStats() }()
		const k = 300
		if c.Rank() == 0 {
			full := c.CreditShare() - c.CreditShare()/4 // a peer returns credit once it took a quarter
			for i := range k {
				for _, p := range []int{1, 3} {
					for c.CreditLeft(p) <= full {
						if err := ctx.Err(); err != nil {
							return err
						}
						time.Sleep(50 * time.Microsecond)
					}
				}
				if err := c.SendAll(ctx, 3, []byte{byte(i), byte(i >> 8)}); err != nil {
					return err
				}
				sent.Add(1)
			}
			return nil
		}
		if c.Rank() == 2 {
			// Receive nothing until rank 0 has sent all it can: all,
			// or no more for 50 ms (it waits for credit here).
			last, still := int64(-1), 0
			for still < 50 {
				if s := sent.Load(); s == k {
					break
				} else if s != last {
					last, still = s, 0
				}
				still++
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
		}
		for i := range k {
			b, _, err := c.Recv(ctx, 0, 3)
			if err != nil {
				return err
			}
			if got := int(b[0]) | int(b[1])<<8; got != i {
				return fmt.Errorf("message %d arrived as %d", got, i)
			}
		}
		return nil
	}, mpi.WithBuffers(budget, 1<<20), mpi.WithEagerLimit(eagerLimit))
	share := creditShare(budget, eagerLimit, n)
	for r := 1; r < n; r++ {
		if stats[r].PeakHeld > share {
			t.Errorf("rank %d held %d unreceived bytes from rank 0, past the credit share of %d", r, stats[r].PeakHeld, share)
		}
	}
	if stats[0].CreditWaits == 0 {
		t.Errorf("rank 0's SendAll never waited for credit")
	}
}

// TestSendAllCancel: a large SendAll that one rank never receives gives up
// with its ctx, and the ranks that had matched it see ErrCanceled.
func TestSendAllCancel(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		switch c.Rank() {
		case 0:
			sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			if err := c.SendAll(sctx, 4, make([]byte, 8<<20)); !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("SendAll nobody completes: %v", err)
			}
			return c.SendAll(ctx, 5, []byte("after"))
		case 1:
			if _, _, err := c.Recv(ctx, 0, 4); !errors.Is(err, mpi.ErrCanceled) {
				return fmt.Errorf("receive of a withdrawn message: %v", err)
			}
		}
		// Rank 2 never receives tag 4; both then get the next message.
		b, _, err := c.Recv(ctx, 0, 5)
		if err != nil || string(b) != "after" {
			return fmt.Errorf("after the withdrawn message: %q, %v", b, err)
		}
		return nil
	})
}

func ExampleComm_SendAll() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			return c.SendAll(ctx, 0, []byte("to everyone"))
		}
		msg, _, err := c.Recv(ctx, 0, 0)
		if c.Rank() == 3 {
			fmt.Println(string(msg))
		}
		return err
	})
	// Output: to everyone
}
