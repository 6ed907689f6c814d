package collectives_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// An Iallreduce overlaps the reduction with work that does not need its
// result: start it, compute, then Wait.
func ExampleIallreduce() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		partial := []float64{float64(c.Rank() + 1)}
		req := collectives.Iallreduce(c, partial, collectives.Sum[float64])
		// ... computation that does not need the sum ...
		total, err := req.Wait(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("total:", total[0])
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: total: 10
}

func ExampleIbarrier() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		req := collectives.Ibarrier(c)
		// ... work while the other ranks arrive ...
		if _, err := req.Wait(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("every rank has started the barrier")
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: every rank has started the barrier
}

func ExampleIbcast() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var params []int
		if c.Rank() == 0 {
			params = []int{64, 1000}
		}
		params, err := collectives.Ibcast(c, 0, params).Wait(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 2 {
			fmt.Println("rank 2 has", params)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: rank 2 has [64 1000]
}

func ExampleIreduce() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		counts := []int{1, c.Rank()}
		got, err := collectives.Ireduce(c, 0, counts, collectives.Sum[int]).Wait(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("ranks:", got[0], "sum of ranks:", got[1])
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: ranks: 4 sum of ranks: 6
}

func ExampleIallgather() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		all, err := collectives.Iallgather(c, []string{fmt.Sprint("r", c.Rank())}).Wait(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(all)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [r0 r1 r2]
}

// Test polls a non-blocking collective between steps of other work.
func ExampleRequest_Test() {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		req := collectives.Iallreduce(c, []int{1}, collectives.Sum[int])
		for {
			sum, ok, err := req.Test()
			if err != nil {
				return err
			}
			if ok {
				if c.Rank() == 0 {
					fmt.Println("sum:", sum[0])
				}
				return nil
			}
			// ... one step of other work ...
		}
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: sum: 2
}

// Done lets a program wait for a collective beside other channels.
func ExampleRequest_Done() {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		req := collectives.Ibarrier(c)
		select {
		case <-req.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		if _, err := req.Wait(ctx); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("barrier done")
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: barrier done
}

func ExampleRequest_Wait() {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		got, err := collectives.Iallgather(c, []int{c.Rank() * 100}).Wait(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(got)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [0 100]
}
