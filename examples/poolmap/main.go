// Command poolmap is Pool.map: the Collatz steps of 1..10000, spread over the ranks by pool.Map (poolmap.py: multiprocessing).
package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

func collatz(ctx context.Context, n int) (steps int, err error) {
	for ; n != 1; steps++ {
		n = [2]int{n / 2, 3*n + 1}[n%2] // Go's ternary: n/2 if n is even, else 3n+1
	}
	return steps, nil
}

func main() { mpi.Main(run) }

func run(ctx context.Context, world *mpi.Comm) error {
	inputs := make([]int, 10000) // 1..10000, read on rank 0 only
	for i := range inputs {
		inputs[i] = i + 1
	}
	if steps := mpi.Must(pool.Map(ctx, world, inputs, collatz)); world.Rank() == 0 && (steps[26] != 111 || slices.Max(steps) != 261) {
		return fmt.Errorf("poolmap: 27 takes %d steps (want 111), the longest %d (want 261)", steps[26], slices.Max(steps))
	} else if world.Rank() == 0 { // the results are rank 0's
		fmt.Printf("poolmap: OK: %d numbers over %d ranks, the longest: %d in 261 steps\n", len(steps), world.Size(), slices.Index(steps, 261)+1)
	}
	return nil
}
