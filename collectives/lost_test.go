package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestLostMember: once a rank of the communicator is lost (cut off, as a
// rank that dies under gorun --on-failure continue is to its peers), a
// collective fails on every other rank with an error naming it, and so do
// the collectives after it: none waits for a peer that gave up because of
// the lost rank (in recursive doubling, rank 1 waits for rank 3, which
// gave up on rank 2).
func TestLostMember(t *testing.T) {
	const n, lost = 4, 2
	for _, op := range []string{"Allreduce", "Bcast", "Barrier"} {
		t.Run(op, func(t *testing.T) {
			net := mpitest.NewNet(mpitest.Faults{})
			errs := make([][2]error, n)
			// The survivors leave together: one that closed its world early
			// would be a lost rank too, to one still in a call.
			var in, done sync.WaitGroup
			in.Add(n)
			done.Add(n - 1)
			net.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				_, err := collectives.Allreduce(ctx, c, []int{1}, collectives.Sum) // everyone in
				in.Done()
				in.Wait() // and out of it, before the cut
				if c.Rank() != lost {
					defer done.Wait()
					defer done.Done()
				}
				if err != nil {
					return err
				}
				if c.Rank() == lost {
					net.Cut(lost)
					return nil
				}
				ctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				for i := range 2 {
					var err error
					switch op {
					case "Allreduce":
						_, err = collectives.Allreduce(ctx, c, []int{1}, collectives.Sum)
					case "Bcast":
						_, err = collectives.Bcast(ctx, c, 0, []int{1, 2, 3})
					case "Barrier":
						err = collectives.Barrier(ctx, c)
					}
					errs[c.Rank()][i] = err
				}
				return nil
			})
			for r, e := range errs {
				if r == lost {
					continue
				}
				for i, err := range e {
					if !errors.Is(err, mpi.ErrPeerLost) || !strings.Contains(err.Error(), fmt.Sprintf("rank %d", lost)) {
						t.Errorf("rank %d, call %d: %v, want ErrPeerLost naming rank %d", r, i+1, err, lost)
					}
				}
			}
		})
	}
}
