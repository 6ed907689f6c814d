package collectives_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// Each rank sends rank j as many copies of its rank number as j+1.
func ExampleAlltoallv() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var data []int
		counts := make([]int, c.Size())
		for j := range counts {
			counts[j] = j + 1
			for range j + 1 {
				data = append(data, c.Rank())
			}
		}
		got, from, err := collectives.Alltoallv(ctx, c, data, counts)
		if err != nil {
			return err
		}
		if c.Rank() == 2 {
			fmt.Println(got, from)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [0 0 0 1 1 1 2 2 2] [3 3 3]
}

func ExampleGatherv() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		data := make([]string, c.Rank()) // rank r has r words
		for i := range data {
			data[i] = fmt.Sprintf("r%d", c.Rank())
		}
		all, counts, err := collectives.Gatherv(ctx, c, 0, data)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(all, counts)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [r1 r2 r2] [0 1 2]
}

func ExampleAllgatherv() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		data := make([]int, c.Rank()+1) // rank r has r+1 elements
		for i := range data {
			data[i] = 10 * c.Rank()
		}
		all, counts, err := collectives.Allgatherv(ctx, c, data)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(all, counts)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [0 10 10 20 20 20] [1 2 3]
}

func ExampleReduceScatterBlock() {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		data := []int{1, 2, 3, 4} // the same on every rank: two blocks of 2
		got, err := collectives.ReduceScatterBlock(ctx, c, data, collectives.Sum)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d has %v\n", c.Rank(), got)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 has [2 4]
	// rank 1 has [6 8]
}

func ExampleReduceScatter() {
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		data := []float64{1, 2, 3} // rank 0 gets the first sum, rank 1 the other two
		got, err := collectives.ReduceScatter(ctx, c, data, []int{1, 2}, collectives.Sum)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d has %v\n", c.Rank(), got)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 has [2]
	// rank 1 has [4 6]
}

// MPI's MINLOC: the smallest value of each column over the ranks, and the
// rank that holds it. Ties go to the smaller Index.
func ExampleMinLoc() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		vals := [][]float64{{3, 1, 2}, {1, 1, 5}, {2, 0, 2}}[c.Rank()]
		data := make([]collectives.Loc[float64], len(vals))
		for i, v := range vals {
			data[i] = collectives.Loc[float64]{Val: v, Index: c.Rank()}
		}
		got, err := collectives.AllreduceFunc(ctx, c, data, collectives.MinLoc)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Printf("%+v\n", got)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [{Val:1 Index:1} {Val:0 Index:2} {Val:2 Index:0}]
}

func ExampleMaxLoc() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		data := []collectives.Loc[int]{{Val: c.Rank() % 2, Index: c.Rank()}}
		got, err := collectives.AllreduceFunc(ctx, c, data, collectives.MaxLoc)
		if err != nil {
			return err
		}
		if c.Rank() == 2 {
			fmt.Printf("%+v\n", got)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [{Val:1 Index:1}]
}

// ReduceFunc reduces any element type: here the longest word of each
// column.
func ExampleReduceFunc() {
	longest := func(acc, in []string) {
		for i := range acc {
			if len(in[i]) > len(acc[i]) || (len(in[i]) == len(acc[i]) && in[i] < acc[i]) {
				acc[i] = in[i]
			}
		}
	}
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		words := [][]string{{"a", "bbb"}, {"cc", "d"}, {"e", "ff"}}[c.Rank()]
		got, err := collectives.ReduceFunc(ctx, c, 1, words, longest)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(got)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [cc bbb]
}

// A struct of several numbers reduced as one element: the sum and the
// largest sample of every rank's readings.
func ExampleAllreduceFunc() {
	type stats struct {
		Sum, Max float64
		N        int
	}
	merge := func(acc, in []stats) {
		for i := range acc {
			acc[i] = stats{acc[i].Sum + in[i].Sum, max(acc[i].Max, in[i].Max), acc[i].N + in[i].N}
		}
	}
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		x := float64(c.Rank() + 1)
		got, err := collectives.AllreduceFunc(ctx, c, []stats{{Sum: x, Max: x, N: 1}}, merge)
		if err != nil {
			return err
		}
		if c.Rank() == 3 {
			fmt.Printf("%+v\n", got[0])
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: {Sum:10 Max:4 N:4}
}
