// Command matvec computes y = A·x: rank 0 scatters A's rows (three per
// rank), broadcasts x, and gathers the parts of y (matvec.py: mpi4py).
package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		n := 3 * world.Size()
		var rows [][]float64 // on rank 0: A[i][j] = i*n + j, three rows per rank
		var x []float64
		if world.Rank() == 0 {
			a := make([]float64, n*n)
			for i := range a {
				a[i] = float64(i)
			}
			rows, x = slices.Collect(slices.Chunk(a, 3*n)), slices.Repeat([]float64{1}, n)
		}
		mine := mpi.Must(collectives.ScatterValues(ctx, world, 0, rows))
		x = mpi.Must(collectives.BcastValue(ctx, world, 0, x))
		part := make([]float64, 3)
		for i := range part {
			for j, xj := range x {
				part[i] += mine[i*n+j] * xj
			}
		}
		y := slices.Concat(mpi.Must(collectives.GatherValues(ctx, world, 0, part))...)
		for i, yi := range y {
			if want := float64(i*n*n + n*(n-1)/2); yi != want {
				return fmt.Errorf("matvec: y[%d] = %v, want %v", i, yi, want)
			}
		}
		if world.Rank() == 0 {
			fmt.Printf("matvec: OK: %dx%d matrix over %d ranks, y[%d] = %v\n", n, n, world.Size(), n-1, y[n-1])
		}
		return nil
	})
}
