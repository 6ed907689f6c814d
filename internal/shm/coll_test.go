//go:build linux

package shm

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestChannelBarrier: ranks that arrive at each call and wait for the
// count all see every other's word of that call once they pass, round
// after round; with no spin, every wait sleeps (on its bell, or on the
// count's futex), and the last arrival wakes it: a sleeper is otherwise
// woken only by its tick (5 s here), and the rounds run out of their
// minute. A rank never passes before the others arrived.
func TestChannelBarrier(t *testing.T) {
	t.Run("bell", func(t *testing.T) { testChannelBarrier(t) })
	t.Run("futex", func(t *testing.T) {
		noBell = true
		defer func() { noBell = false }()
		testChannelBarrier(t)
	})
}

func testChannelBarrier(t *testing.T) {
	const n, rounds, tick = 4, 500, 5 * time.Second
	for _, spin := range []time.Duration{0, 20 * time.Microsecond} {
		path := segment(t, n, 4096)
		id := uint64(7 + spin)
		deadline := time.Now().Add(time.Minute)
		stop := func() bool { return time.Now().After(deadline) }
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for r := range n {
			e := open(t, path, r)
			ch, ok := e.Channel(id)
			if !ok {
				t.Fatal("no channel")
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 1; k <= rounds; k++ {
					ch.Arrive(uint64(k), uint32(n*k))
					if err := ch.Wait(uint32(n*k), Spin{For: spin}, tick, stop); err != nil {
						errs <- err
						return
					}
					for q := range n {
						if w := ch.Cell(q); w < uint64(k) {
							errs <- errors.New("passed before every rank arrived")
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("spin %v: %v", spin, err)
		}
	}
}

// TestChannelClaims: ranks asking for one id get one channel; other ids
// get others until none is left, for every rank alike.
func TestChannelClaims(t *testing.T) {
	path := segment(t, 2, 4096)
	a, b := open(t, path, 0), open(t, path, 1)
	seen := map[int]uint64{}
	for id := uint64(1); id <= Channels; id++ {
		ca, ok1 := a.Channel(id * 1000003)
		cb, ok2 := b.Channel(id * 1000003)
		if !ok1 || !ok2 || ca.base != cb.base {
			t.Fatalf("id %d: channels %v %v, ok %v %v", id, ca, cb, ok1, ok2)
		}
		if other, dup := seen[ca.base]; dup {
			t.Fatalf("ids %d and %d share a channel", other, id)
		}
		seen[ca.base] = id
	}
	if _, ok := b.Channel(42); ok {
		t.Error("a channel past the last one")
	}
	if _, ok := a.Channel(0); ok {
		t.Error("a channel for id 0")
	}
}

// TestChannelOutlivesClose: a channel still works after its endpoint
// closed (the area is mapped apart), and the area is unmapped once
// nothing holds it.
func TestChannelOutlivesClose(t *testing.T) {
	path := segment(t, 1, 4096)
	e, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := e.Channel(9)
	e.Close()
	runtime.GC()
	ch.Arrive(1, 1)
	if err := ch.Wait(1, Spin{}, time.Millisecond, nil); err != nil || ch.Cell(0) != 1 {
		t.Fatalf("after Close: %v, cell %d", err, ch.Cell(0))
	}
}

// TestChannelWaitStops: a wait for a rank that never arrives ends when
// stop says so.
func TestChannelWaitStops(t *testing.T) {
	path := segment(t, 2, 4096)
	ch, _ := open(t, path, 0).Channel(5)
	ch.Arrive(1, 2)
	deadline := time.Now().Add(50 * time.Millisecond)
	err := ch.Wait(2, Spin{}, 5*time.Millisecond, func() bool { return time.Now().After(deadline) })
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("Wait = %v, want ErrStopped", err)
	}
}

// TestChannelWaitArrivedThenGone: the last member arrives and then leaves
// (stop says it is gone) while a wait is about to sleep: the call is
// complete, and the wait returns nil, not ErrStopped (a Barrier that every
// rank had reached failed so, on the rank that looked last).
func TestChannelWaitArrivedThenGone(t *testing.T) {
	bellOrFutex(t, func(t *testing.T, _ ...string) {
		path := segment(t, 2, 4096)
		ch, _ := open(t, path, 0).Channel(9)
		other, _ := open(t, path, 1).Channel(9)
		ch.Arrive(1, 2)
		stop := func() bool {
			other.Arrive(1, 2) // arrives, then is gone
			return true
		}
		if err := ch.Wait(2, Spin{}, time.Minute, stop); err != nil {
			t.Fatalf("Wait = %v, want nil: every member arrived", err)
		}
	})
}

// TestChannelArrivalPastTarget: a member that goes on to a later call
// before another's last arrival at this one makes the count run past this
// call's target; a member asleep waiting for a count past its own target
// (mpi's wait, which then reads the cells) is woken by that later arrival,
// not left to its tick (a minute here: the test would run out first).
func TestChannelArrivalPastTarget(t *testing.T) {
	bellOrFutex(t, func(t *testing.T, _ ...string) {
		const n = 3
		path := segment(t, n, 4096)
		chs := make([]*Channel, n)
		for r := range chs {
			chs[r], _ = open(t, path, r).Channel(11)
		}
		chs[0].Arrive(1, n) // call 1, then on to call 2
		chs[0].Arrive(2, 2*n)
		chs[1].Arrive(1, n)
		done := make(chan error, 1)
		go func() {
			// Rank 1 waits for call 1: the count (3) has reached 3 but rank
			// 2 has not come, so it waits for one more arrival.
			done <- chs[1].Wait(n+1, Spin{}, time.Minute, func() bool { return false })
		}()
		time.Sleep(20 * time.Millisecond) // asleep by now, most likely
		chs[2].Arrive(1, n)               // the count reaches 4, past call 1's target
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the arrival past the target woke no one")
		}
	})
}
