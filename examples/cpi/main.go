// Command cpi computes π as the integral of 4/(1+x²) over [0, 1] by the
// midpoint rule, each rank taking every size-th interval (cpi.py: mpi4py).
package main

import (
	"context"
	"fmt"
	"math"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		n := mpi.Must(collectives.BcastValue(ctx, world, 0, 1_000_000))
		h, s := 1/float64(n), 0.0
		for i := world.Rank(); i < n; i += world.Size() {
			x := h * (float64(i) + 0.5)
			s += 4 / (1 + x*x)
		}
		pi := mpi.Must(collectives.AllreduceValue(ctx, world, s*h, collectives.Sum))
		if math.Abs(pi-math.Pi) > 1e-9 {
			return fmt.Errorf("cpi: pi = %v is wrong", pi)
		} else if world.Rank() == 0 {
			fmt.Printf("cpi: OK: pi = %.12f from %d intervals over %d ranks\n", pi, n, world.Size())
		}
		return nil
	})
}
