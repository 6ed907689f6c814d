// Command cpi computes π as the integral of 4/(1+x²) over [0, 1] by the
// midpoint rule, each rank taking every size-th interval (cpi.py: mpi4py).
package main

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	ctx := context.Background()
	world := must(mpi.Init(ctx))
	defer world.Close()
	n := must(collectives.BcastValue(ctx, world, 0, 1_000_000))
	h, s := 1/float64(n), 0.0
	for i := world.Rank(); i < n; i += world.Size() {
		x := h * (float64(i) + 0.5)
		s += 4 / (1 + x*x)
	}
	pi := must(collectives.AllreduceValue(ctx, world, s*h, collectives.Sum))
	if math.Abs(pi-math.Pi) > 1e-9 {
		log.Fatalf("cpi: pi = %v is wrong", pi)
	} else if world.Rank() == 0 {
		fmt.Printf("cpi: OK: pi = %.12f from %d intervals over %d ranks\n", pi, n, world.Size())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
