package mpi_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

func ExampleDimsCreate() {
	dims, _ := mpi.DimsCreate(12, []int{0, 0})
	fmt.Println(dims)
	dims, _ = mpi.DimsCreate(6, []int{0, 3, 0}) // the 3 is kept
	fmt.Println(dims)
	_, err := mpi.DimsCreate(7, []int{2, 0})
	fmt.Println(err)
	// Output:
	// [4 3]
	// [2 3 1]
	// mpi: dimscreate: the given dims [2 0] (product 2) cannot make a grid of 7 ranks
}

// A 2x3 grid, periodic along its rows only.
func ExampleComm_CartCreate() {
	mpitest.World(context.Background(), 6, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{2, 3}, []bool{false, true}, false)
		if err != nil {
			return err
		}
		if g.Rank() == 0 {
			fmt.Println(g.Size(), "ranks, dims", g.Dims(), "periodic", g.Periodic())
		}
		return nil
	})
	// Output: 6 ranks, dims [2 3] periodic [false true]
}

func ExampleCart_Coords() {
	mpitest.World(context.Background(), 6, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{2, 3}, []bool{false, false}, false)
		if err != nil {
			return err
		}
		if g.Rank() == 0 {
			for r := range g.Size() {
				fmt.Print(g.Coords(r), " ")
			}
			fmt.Println()
		}
		return nil
	})
	// Output: [0 0] [0 1] [0 2] [1 0] [1 1] [1 2]
}

func ExampleCart_RankOf() {
	mpitest.World(context.Background(), 6, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{2, 3}, []bool{false, true}, false)
		if err != nil {
			return err
		}
		if g.Rank() == 0 {
			fmt.Println(g.RankOf([]int{1, 2}))  // row 1, column 2
			fmt.Println(g.RankOf([]int{1, -1})) // the columns wrap: column 2 again
			fmt.Println(g.RankOf([]int{2, 0}) == mpi.ProcNull)
		}
		return nil
	})
	// Output:
	// 5
	// 5
	// true
}

// A halo exchange on a ring of 4 that is not closed: the ends send to and
// receive from ProcNull, with the same Sendrecv as everyone.
func ExampleCart_Shift() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{4}, []bool{false}, false)
		if err != nil {
			return err
		}
		src, dst := g.Shift(0, 1)
		b, _, err := g.Sendrecv(ctx, dst, 0, []byte{byte(10 * g.Rank())}, src, 0)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("rank %d: from %d to %d, got %v", g.Rank(), src, dst, b)
		if g.Rank() != 0 {
			return g.Send(ctx, 0, 1, []byte(line))
		}
		fmt.Println(line)
		for r := 1; r < g.Size(); r++ {
			b, _, err := g.Recv(ctx, r, 1)
			if err != nil {
				return err
			}
			fmt.Println(string(b))
		}
		return nil
	})
	// Output:
	// rank 0: from -2 to 1, got []
	// rank 1: from 0 to 2, got [0]
	// rank 2: from 1 to 3, got [10]
	// rank 3: from 2 to -2, got [20]
}

// The rows of a 2x3 grid.
func ExampleCart_Sub() {
	mpitest.World(context.Background(), 6, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{2, 3}, []bool{false, false}, false)
		if err != nil {
			return err
		}
		row, err := g.Sub(ctx, []bool{false, true})
		if err != nil {
			return err
		}
		if g.Rank() == 4 {
			fmt.Println("grid rank 4 at", g.Coords(4), "is rank", row.Rank(), "of a row of", row.Dims())
		}
		return nil
	})
	// Output: grid rank 4 at [1 1] is rank 1 of a row of [3]
}
