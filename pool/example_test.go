package pool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// Every rank calls Map; rank 0's inputs are handed out, and rank 0 gets the
// results in input order.
func ExampleMap() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		var words []string
		if c.Rank() == 0 {
			words = strings.Fields("the quick brown fox jumps over the lazy dog")
		}
		lengths, err := pool.Map(ctx, c, words, func(ctx context.Context, w string) (int, error) {
			return len(w), nil
		})
		if c.Rank() == 0 {
			fmt.Println(lengths)
		}
		return err
	})
	// Output: [3 5 5 3 5 4 3 4 3]
}

// A struct in, a struct out: they travel with encoding/gob.
func ExampleMap_struct() {
	type params struct{ N, Steps int }
	type outcome struct {
		N   int
		Sum int
	}
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var jobs []params
		if c.Rank() == 0 {
			jobs = []params{{1, 10}, {2, 10}, {3, 100}}
		}
		res, err := pool.Map(ctx, c, jobs, func(ctx context.Context, p params) (outcome, error) {
			return outcome{p.N, p.N * p.Steps}, nil
		})
		if c.Rank() == 0 {
			fmt.Printf("%+v\n", res)
		}
		return err
	})
	// Output: [{N:1 Sum:10} {N:2 Sum:20} {N:3 Sum:300}]
}

// A task's error ends the call on every rank, naming the task and the rank
// that ran it.
func ExampleMap_error() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = []int{4, 9, -1, 16}
		}
		_, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			if x < 0 {
				return 0, errors.New("negative input")
			}
			return x / 2, nil
		}, pool.Static()) // blocks [4 9] and [-1 16]: task 2 runs on rank 1
		var te *pool.TaskError
		if c.Rank() == 0 && errors.As(err, &te) {
			fmt.Println(err)
			fmt.Println("task", te.Index, "rank", te.Rank)
		}
		return nil
	})
	// Output:
	// pool: task 2 (on rank 1): negative input
	// task 2 rank 1
}

// MapUnordered hands rank 0 each result as it arrives: here a running
// total, with no slice of results kept.
func ExampleMapUnordered() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			for i := 1; i <= 100; i++ {
				in = append(in, i)
			}
		}
		total, count := 0, 0
		err := pool.MapUnordered(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			return x * x, nil
		}, func(i, sq int) error {
			total += sq
			count++
			return nil
		})
		if c.Rank() == 0 {
			fmt.Println(count, "results, sum of squares", total)
		}
		return err
	})
	// Output: 100 results, sum of squares 338350
}

// Chunk hands out several tasks at a time: fewer messages for cheap tasks.
func ExampleChunk() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var in []float64
		if c.Rank() == 0 {
			in = make([]float64, 1000)
			for i := range in {
				in[i] = float64(i)
			}
		}
		out, err := pool.Map(ctx, c, in, func(ctx context.Context, x float64) (float64, error) {
			return x / 2, nil
		}, pool.Chunk(50))
		if c.Rank() == 0 {
			fmt.Println(len(out), out[999])
		}
		return err
	})
	// Output: 1000 499.5
}

// Static cuts the tasks into one block per rank up front; each rank runs
// its own block.
func ExampleStatic() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = []int{0, 1, 2, 3, 4, 5, 6}
		}
		ranks, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			return c.Rank(), nil // which rank ran task x
		}, pool.Static())
		if c.Rank() == 0 {
			fmt.Println(ranks)
		}
		return err
	})
	// Output: [0 0 0 1 1 2 2]
}
