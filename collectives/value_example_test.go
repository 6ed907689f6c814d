package collectives_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// One number per rank in, one number out: mpi4py's comm.allreduce(x).
func ExampleAllreduceValue() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		total, err := collectives.AllreduceValue(ctx, c, c.Rank()+1, collectives.Sum)
		if c.Rank() == 3 {
			fmt.Println(total)
		}
		return err
	})
	// Output: 10
}

// The largest value of any rank, on root only (the others get zero).
func ExampleReduceValue() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		largest, err := collectives.ReduceValue(ctx, c, 0, float64(c.Rank())*1.5, collectives.Max)
		if c.Rank() == 0 {
			fmt.Println(largest)
		}
		return err
	})
	// Output: 4.5
}

// Any type, here a struct: root's value reaches every rank.
func ExampleBcastValue() {
	type config struct {
		Steps int
		Tol   float64
	}
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var cfg config
		if c.Rank() == 0 {
			cfg = config{Steps: 100, Tol: 1e-6}
		}
		cfg, err := collectives.BcastValue(ctx, c, 0, cfg)
		if c.Rank() == 2 {
			fmt.Printf("%+v\n", cfg)
		}
		return err
	})
	// Output: {Steps:100 Tol:1e-06}
}

// Root gets one value per rank, in rank order; the others get nil.
func ExampleGatherValues() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		squares, err := collectives.GatherValues(ctx, c, 0, c.Rank()*c.Rank())
		if c.Rank() == 0 {
			fmt.Println(squares)
		}
		return err
	})
	// Output: [0 1 4 9]
}

// Every rank gets one value per rank, in rank order.
func ExampleAllgatherValues() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		names, err := collectives.AllgatherValues(ctx, c, fmt.Sprintf("r%d", c.Rank()))
		if c.Rank() == 1 {
			fmt.Println(names)
		}
		return err
	})
	// Output: [r0 r1 r2]
}

// Root hands out one value per rank.
func ExampleScatterValues() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var work []string
		if c.Rank() == 0 {
			work = []string{"alpha", "beta", "gamma"}
		}
		mine, err := collectives.ScatterValues(ctx, c, 0, work)
		if c.Rank() == 2 {
			fmt.Println(mine)
		}
		return err
	})
	// Output: gamma
}

// Root must have exactly one value per rank; if not, every rank gets the
// same error, naming both numbers.
func ExampleScatterValues_mismatch() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var work []int
		if c.Rank() == 0 {
			work = []int{1, 2}
		}
		_, err := collectives.ScatterValues(ctx, c, 0, work)
		if c.Rank() == 0 {
			fmt.Println(err)
		}
		return nil
	})
	// Output: collectives: ScatterValues: root 0 has 2 values for 3 ranks, want one per rank: collectives: invalid counts
}
