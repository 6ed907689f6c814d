// Command matvec computes y = A·x: rank 0 scatters A's rows, broadcasts x and gathers y (matvec.py: mpi4py).
package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() { mpi.Main(run) }

func run(ctx context.Context, world *mpi.Comm) error {
	n := 3 * world.Size()
	var a, x []float64 // on rank 0: A[i][j] = a[i*n+j] = i*n + j, and x = (1, ..., 1)
	if world.Rank() == 0 {
		a, x = make([]float64, n*n), slices.Repeat([]float64{1}, n)
		for i := range a {
			a[i] = float64(i)
		}
	}
	mine := mpi.Must(collectives.ScatterValues(ctx, world, 0, slices.Collect(slices.Chunk(a, 3*n))))
	x = mpi.Must(collectives.BcastValue(ctx, world, 0, x))
	part := make([]float64, 3) // my three rows times x
	for k, v := range mine {
		part[k/n] += v * x[k%n]
	}
	for i, yi := range slices.Concat(mpi.Must(collectives.GatherValues(ctx, world, 0, part))...) { // y, on rank 0
		if want := float64(i*n*n + n*(n-1)/2); yi != want {
			return fmt.Errorf("matvec: y[%d] = %v, want %v", i, yi, want)
		} else if i == n-1 { // all of y is right
			fmt.Printf("matvec: OK: %dx%d matrix over %d ranks, y[%d] = %v\n", n, n, world.Size(), i, yi)
		}
	}
	return nil
}
