package mpi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestShrink: after a rank is lost (cut off, as one that dies under gorun
// --on-failure continue is to its peers), the others Agree alike and Shrink
// to one communicator of size n-1, in their old order, on which messages
// flow; with the rank lost before the calls, and while they run.
func TestShrink(t *testing.T) {
	type tcase struct {
		name    string
		n, lost int
		during  bool          // the lost rank takes part in Agree, and is cut off while it runs...
		after   time.Duration // ...this long after it began
	}
	cases := []tcase{{"before/n=5/lost=3", 5, 3, false, 0}, {"before/n=4/lost=0", 4, 0, false, 0}}
	for _, lost := range []int{0, 2} {
		for _, after := range []time.Duration{0, 20 * time.Microsecond, 100 * time.Microsecond, 500 * time.Microsecond, 2 * time.Millisecond} {
			cases = append(cases, tcase{fmt.Sprintf("during/n=6/lost=%d/after=%v", lost, after), 6, lost, true, after})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			net := mpitest.NewNet(mpitest.Faults{Seed: 1, MaxDelay: 200 * time.Microsecond, Reorder: true})
			var mu sync.Mutex
			agreed := map[int]int{}
			net.Run(t, c.n, func(ctx context.Context, w *mpi.Comm) error {
				if w.Rank() == c.lost {
					if c.during {
						// Its flag counts for some ranks and not others, or
						// its round reaches some: all must still agree.
						time.AfterFunc(c.after, func() { net.Cut(c.lost) })
						w.Agree(ctx, 0b011)
						return nil
					}
					net.Cut(c.lost)
					return nil
				}
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				flag := 0b111
				if w.Rank() == 1 || (c.lost == 1 && w.Rank() == 2) {
					flag = 0b101 // one survivor's flag differs: the AND says so
				}
				v, err := w.Agree(ctx, flag)
				if err != nil {
					return fmt.Errorf("Agree: %w", err)
				}
				mu.Lock()
				agreed[w.Rank()] = v
				mu.Unlock()
				s, err := w.Shrink(ctx)
				if err != nil {
					return fmt.Errorf("Shrink: %w", err)
				}
				if s.Size() != c.n-1 {
					return fmt.Errorf("Shrink gave %d ranks, want %d", s.Size(), c.n-1)
				}
				if want := w.Rank() - btoi(w.Rank() > c.lost); s.Rank() != want {
					return fmt.Errorf("rank %d is rank %d of the shrunk communicator, want %d", w.Rank(), s.Rank(), want)
				}
				// A ring on the new communicator: every message arrives.
				next, prev := (s.Rank()+1)%s.Size(), (s.Rank()+s.Size()-1)%s.Size()
				got, _, err := s.Sendrecv(ctx, next, 7, []byte{byte(s.Rank())}, prev, 7)
				if err != nil || len(got) != 1 || int(got[0]) != prev {
					return fmt.Errorf("ring on the shrunk communicator: %v, %v", got, err)
				}
				return nil
			})
			want := -1
			for r, v := range agreed {
				if want < 0 {
					want = v
				}
				// With the lost rank's flag (011) or without it, the same
				// for all.
				if v != want || (v != 0b101 && v != 0b001) || (!c.during && v != 0b101) {
					t.Errorf("rank %d agreed on %03b; all agreed: %v", r, v, agreed)
				}
			}
			if len(agreed) != c.n-1 {
				t.Errorf("%d ranks agreed, want %d", len(agreed), c.n-1)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
