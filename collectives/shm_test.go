//go:build linux

package collectives

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestConformanceShared runs the suite with the ranks on one shared-memory
// segment, as gorun runs the ranks of one host: every frame between them
// goes through the rings, and SendAll to each rank in turn.
func TestConformanceShared(t *testing.T) {
	conformance(t, mpitest.RunShared)
}

var randomShmCases = flag.Int("random.shmcases", 60, "how many cases TestRandomShared runs")

// TestRandomShared is TestRandomMemory with the ranks on one shared-memory
// segment: random point-to-point programs (small eager limits and budgets
// among them, so that rings fill and sends queue) and random collective
// programs, checked against what was sent.
func TestRandomShared(t *testing.T) {
	base, cases := randomSeeds(t, *randomShmCases, 20)
	for i := range cases {
		seed := base + uint64(i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var err error
			var what fmt.Stringer
			if seed%2 == 0 {
				pc := drawP2P(seed)
				what = pc
				err = mpitest.WorldShared(ctx, pc.n, func(ctx context.Context, c *mpi.Comm) error {
					return pc.run(ctx, c)
				}, pc.opts()...)
			} else {
				rc := drawCase(seed)
				what = rc
				err = mpitest.WorldShared(ctx, rc.n, func(ctx context.Context, c *mpi.Comm) error {
					return runRandom(ctx, c, rc)
				}, mpi.WithMulticast(rc.mc), mpi.WithSingleCopy(rc.sc))
			}
			if err != nil {
				t.Errorf("%v\n  case: %v\n  replay: go test ./collectives -run TestRandomShared -random.seed=%d -random.shmcases=1", err, what, seed)
			}
		})
	}
}

// TestConformanceHosts runs the suite with the ranks on hosts of two
// consecutive ranks each (the last alone when n is odd), each host's on a
// segment of its own: the agreement tree then has a group per host
// (agreeGroups), whose leaders alone talk across hosts, through the server.
func TestConformanceHosts(t *testing.T) {
	conformance(t, func(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := mpitest.WorldHosts(ctx, blockHosts(n, 2), fn, opts...); err != nil {
			t.Fatal(err)
		}
	})
}
