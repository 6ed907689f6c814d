package collectives

import (
	"context"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestAllreduceSingletonLarge is the report that opened issue 9: on a world
// of one rank, an Allreduce of 1<<20 float64 (past halvingMax, so the ring's
// path) returned zeros.
func TestAllreduceSingletonLarge(t *testing.T) {
	mpitest.Run(t, 1, func(ctx context.Context, c *mpi.Comm) error {
		xs := make([]float64, 1<<20)
		for i := range xs {
			xs[i] = 1
		}
		if len(xs)*8 <= halvingMax {
			t.Fatalf("%d bytes do not pass halvingMax (%d)", len(xs)*8, halvingMax)
		}
		for _, k := range []string{"Allreduce", "Reduce"} {
			var got []float64
			var err error
			if k == "Allreduce" {
				got, err = Allreduce(ctx, c, xs, Sum)
			} else {
				got, err = Reduce(ctx, c, 0, xs, Sum)
			}
			if err != nil {
				return err
			}
			if err := expect(k, got, xs); err != nil {
				return err
			}
		}
		return nil
	})
}
