package mpi_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// lostWithin checks that err is ErrPeerLost naming rank, and came within
// 1 s of start.
func lostWithin(what string, err error, rank int, start time.Time) error {
	var re *mpi.RankError
	switch {
	case !errors.Is(err, mpi.ErrPeerLost):
		return fmt.Errorf("%s: %v, want ErrPeerLost", what, err)
	case !errors.As(err, &re) || re.Rank != rank:
		return fmt.Errorf("%s: %v, want it to name rank %d", what, err, rank)
	case time.Since(start) > time.Second:
		return fmt.Errorf("%s: ErrPeerLost after %v, want within 1s", what, time.Since(start))
	}
	return nil
}

// TestPeerLost: a rank that closed its world cleanly is gone for the
// others at once: what it sent before is still received, in order; a
// receive from it, a send to it (small or large), a Probe for it fail with
// ErrPeerLost naming it, within a second, instead of hanging. A receive
// from AnySource is left waiting.
func TestPeerLost(t *testing.T) {
	big := make([]byte, 1<<20) // a rendezvous send, which waits for its receiver
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		switch c.Rank() {
		case 1:
			for i := range 3 {
				if err := c.Send(ctx, 0, 1, []byte{byte(i)}); err != nil {
					return err
				}
			}
			return c.Close()
		case 0:
			r := c.Irecv(1, 2) // posted before rank 1 closes
			for i := range 3 {
				b, _, err := c.Recv(ctx, 1, 1)
				if err != nil || len(b) != 1 || b[0] != byte(i) {
					return fmt.Errorf("message %d sent before Close: %v %v", i, b, err)
				}
			}
			start := time.Now()
			if _, err := r.Wait(ctx); lostWithin("posted Irecv", err, 1, start) != nil {
				return lostWithin("posted Irecv", err, 1, start)
			}
			for _, step := range []struct {
				what string
				do   func() error
			}{
				{"Recv", func() error { _, _, err := c.Recv(ctx, 1, 2); return err }},
				{"Recv(AnyTag)", func() error { _, _, err := c.Recv(ctx, 1, mpi.AnyTag); return err }},
				{"Probe", func() error { _, err := c.Probe(ctx, 1, 2); return err }},
				{"small Send", func() error { return c.Send(ctx, 1, 2, []byte("x")) }},
				{"large Send", func() error { return c.Send(ctx, 1, 2, big) }},
				{"SendAll", func() error { return c.SendAll(ctx, 4, big) }},
			} {
				start := time.Now()
				if err := lostWithin(step.what, step.do(), 1, start); err != nil {
					return err
				}
			}
			return c.Close()
		case 2:
			// A receive from AnySource is left waiting, though every
			// other rank closes: this rank may send to itself.
			r := c.Irecv(mpi.AnySource, 5)
			select {
			case <-r.Done():
				_, err := r.Wait(ctx)
				return fmt.Errorf("Recv(AnySource) ended: %v", err)
			case <-time.After(time.Second):
			}
			if err := c.Send(ctx, 2, 5, []byte("self")); err != nil {
				return err
			}
			if _, err := r.Wait(ctx); err != nil || string(r.Data()) != "self" {
				return fmt.Errorf("Recv(AnySource) of a message to self: %q %v", r.Data(), err)
			}
		}
		return nil
	})
}

// TestPeerLostAfterMulticast: what a rank sent with SendAll just before it
// closed reaches every other rank, though its multicast frames come on a
// subscription of their own and may be handled after its bye.
func TestPeerLostAfterMulticast(t *testing.T) {
	for round := range 5 {
		mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if c.Rank() == 1 {
				for i := range 20 {
					if err := c.SendAll(ctx, i, []byte{byte(i)}); err != nil {
						return err
					}
				}
				return c.Close()
			}
			for i := range 20 {
				b, _, err := c.Recv(ctx, 1, i)
				if err != nil || len(b) != 1 || b[0] != byte(i) {
					return fmt.Errorf("round %d: SendAll %d before Close: %v %v", round, i, b, err)
				}
			}
			return nil
		})
	}
}

// TestPeerLostDuringSendAll: a large SendAll that a rank leaves before it
// takes fails with ErrPeerLost on the sender, and is withdrawn at the
// ranks that had matched it (their receive fails with ErrCanceled): none
// of them waits forever.
func TestPeerLostDuringSendAll(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		const tag = 6
		switch c.Rank() {
		case 0:
			err := c.SendAll(ctx, tag, make([]byte, 4<<20))
			if !errors.Is(err, mpi.ErrPeerLost) {
				return fmt.Errorf("SendAll that rank 2 left: %v, want ErrPeerLost", err)
			}
			_, _, err = c.Recv(ctx, 1, 9) // rank 1 is done too
			return err
		case 1:
			_, _, err := c.Recv(ctx, 0, tag)
			if !errors.Is(err, mpi.ErrCanceled) {
				return fmt.Errorf("receive of the withdrawn SendAll: %v, want ErrCanceled", err)
			}
			return c.Send(ctx, 0, 9, nil)
		default:
			if _, err := c.Probe(ctx, 0, tag); err != nil { // it has come: leave without it
				return err
			}
		}
		return nil
	})
}

// TestCutOff: over the in-memory network, a rank cut off (a machine that
// vanished) is lost for every peer blocked on it: a posted receive from it,
// a large send to it waiting for its grant, and a receive posted before
// the cut all fail within 1 s with ErrPeerLost naming it; the cut rank's
// own blocked receive fails with ErrConnLost.
func TestCutOff(t *testing.T) {
	const cut, ready = 3, 1
	big := make([]byte, 1<<20)
	net := mpitest.NewNet(mpitest.Chaos(t, *memorySeed, "./mpi -memory.seed"))
	var mu sync.Mutex
	var cutAt time.Time
	since := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return cutAt
	}
	net.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		switch c.Rank() {
		case cut:
			_, _, err := c.Recv(ctx, 0, 0)
			if !errors.Is(err, mpi.ErrConnLost) {
				return fmt.Errorf("the cut rank's receive: %v, want ErrConnLost", err)
			}
			return nil
		case 0:
			r := c.Irecv(cut, 0)
			for range 2 {
				if _, _, err := c.Recv(ctx, mpi.AnySource, ready); err != nil {
					return err
				}
			}
			mu.Lock()
			cutAt = time.Now()
			net.Cut(cut)
			mu.Unlock()
			_, err := r.Wait(ctx)
			return lostWithin("a receive posted before the cut", err, cut, since())
		case 1:
			r := c.Irecv(cut, 5)
			if err := c.Send(ctx, 0, ready, nil); err != nil {
				return err
			}
			_, err := r.Wait(ctx)
			return lostWithin("a receive from the cut rank", err, cut, since())
		default:
			r := c.Isend(cut, 5, big)
			if err := c.Send(ctx, 0, ready, nil); err != nil {
				return err
			}
			_, err := r.Wait(ctx)
			return lostWithin("a large send to the cut rank", err, cut, since())
		}
	})
}
