package collectives_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

func ExampleBarrier() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		// ... each rank does its part of the work ...
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("every rank is past the barrier's start")
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: every rank is past the barrier's start
}

func ExampleBcast() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var params []float64
		if c.Rank() == 0 {
			params = []float64{0.5, 1e-6, 42} // read from a file, say
		}
		params, err := collectives.Bcast(ctx, c, 0, params)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d has %v\n", c.Rank(), params)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 has [0.5 1e-06 42]
	// rank 1 has [0.5 1e-06 42]
	// rank 2 has [0.5 1e-06 42]
}

// BcastInto fills each rank's own buffer, as MPI_Bcast does: a loop that
// broadcasts a large array every step allocates nothing for it.
func ExampleBcastInto() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		field := make([]float64, 4) // the same length on every rank
		for step := range 2 {
			if c.Rank() == 0 {
				for i := range field {
					field[i] = float64(10*step + i) // rank 0's new field
				}
			}
			if err := collectives.BcastInto(ctx, c, 0, field); err != nil {
				return err
			}
		}
		fmt.Printf("rank %d has %v\n", c.Rank(), field)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 has [10 11 12 13]
	// rank 1 has [10 11 12 13]
	// rank 2 has [10 11 12 13]
}

// AllreduceInto sums into a buffer of the caller's, here in place of the
// data, as MPI_Allreduce with MPI_IN_PLACE.
func ExampleAllreduceInto() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		grad := []float64{1, 2, float64(c.Rank())} // this rank's part of a gradient
		if err := collectives.AllreduceInto(ctx, c, grad, grad, collectives.Sum); err != nil {
			return err
		}
		fmt.Printf("rank %d has %v\n", c.Rank(), grad)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 has [3 6 3]
	// rank 1 has [3 6 3]
	// rank 2 has [3 6 3]
}

// Any element type that encoding/gob handles can be broadcast.
func ExampleBcast_struct() {
	type Config struct {
		Name  string
		Steps int
	}
	err := mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		var cfg []Config
		if c.Rank() == 1 {
			cfg = []Config{{"warm-up", 10}, {"run", 1000}}
		}
		cfg, err := collectives.Bcast(ctx, c, 1, cfg)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Printf("%+v\n", cfg)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [{Name:warm-up Steps:10} {Name:run Steps:1000}]
}

func ExampleScatter() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		var all []int
		if c.Rank() == 0 {
			all = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		}
		part, err := collectives.Scatter(ctx, c, 0, all)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d got %v\n", c.Rank(), part)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 got [0 1 2]
	// rank 1 got [3 4 5]
	// rank 2 got [6 7]
	// rank 3 got [8 9]
}

func ExampleScatterv() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var all []string
		var counts []int
		if c.Rank() == 2 {
			all = []string{"a", "b", "c", "d"}
			counts = []int{1, 0, 3}
		}
		part, err := collectives.Scatterv(ctx, c, 2, all, counts)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d got %q\n", c.Rank(), part)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 got ["a"]
	// rank 1 got []
	// rank 2 got ["b" "c" "d"]
}

func ExampleGather() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		// Rank r contributes r copies of r: the lengths differ.
		mine := make([]int, c.Rank())
		for i := range mine {
			mine[i] = c.Rank()
		}
		all, err := collectives.Gather(ctx, c, 0, mine)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println(all)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [1 2 2 3 3 3]
}

func ExampleAllgather() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		hosts, err := collectives.Allgather(ctx, c, []string{fmt.Sprintf("node%d", c.Rank())})
		if err != nil {
			return err
		}
		if c.Rank() == 2 {
			fmt.Println(hosts)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [node0 node1 node2]
}

func ExampleReduce_sum() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		sum, err := collectives.Reduce(ctx, c, 0, []int{1, 2, 3}, collectives.Sum)
		if c.Rank() == 0 {
			fmt.Println(sum) // print on root only, so the output is deterministic
		}
		return err
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [3 6 9]
}

func ExampleReduce_max() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		r := float64(c.Rank())
		best, err := collectives.Reduce(ctx, c, 3, []float64{r, 10 - r}, collectives.Max)
		if c.Rank() == 3 {
			fmt.Println(best)
		}
		return err
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [3 10]
}

func ExampleAllreduce() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		xs := []float64{1, float64(c.Rank())}
		total, err := collectives.Allreduce(ctx, c, xs, collectives.Sum)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			fmt.Println(total)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: [4 6]
}

// A user Op combines element-wise; it must be associative and commutative.
func ExampleOp() {
	// Bitwise or of flags, as MPI's MPI_BOR.
	or := func(acc, in []uint8) {
		for i := range acc {
			acc[i] |= in[i]
		}
	}
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		flags, err := collectives.Allreduce(ctx, c, []uint8{1 << c.Rank()}, or)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Printf("%03b\n", flags[0])
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: 111
}

func ExampleAlltoall() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		// Block j of rank r is "r->j".
		var out []string
		for j := range c.Size() {
			out = append(out, fmt.Sprintf("%d->%d", c.Rank(), j))
		}
		in, err := collectives.Alltoall(ctx, c, out)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d got %v\n", c.Rank(), in)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 got [0->0 1->0 2->0]
	// rank 1 got [0->1 1->1 2->1]
	// rank 2 got [0->2 1->2 2->2]
}

func ExampleScan() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		// Each rank has some items; where do its items start in the whole?
		items := []int{c.Rank() + 1}
		upto, err := collectives.Scan(ctx, c, items, collectives.Sum)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d: items up to mine: %d\n", c.Rank(), upto[0])
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0: items up to mine: 1
	// rank 1: items up to mine: 3
	// rank 2: items up to mine: 6
	// rank 3: items up to mine: 10
}

func ExampleExscan() {
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		before, err := collectives.Exscan(ctx, c, []int{c.Rank() + 1}, collectives.Sum)
		if err != nil {
			return err
		}
		fmt.Printf("rank %d starts at %v\n", c.Rank(), before)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// rank 0 starts at []
	// rank 1 starts at [1]
	// rank 2 starts at [3]
	// rank 3 starts at [6]
}

// Mistakes are errors on every rank, never a hang.
func ExampleReduce_mismatch() {
	err := mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		xs := make([]float64, 10+c.Rank()/2) // rank 2 passes 11 elements
		_, err := collectives.Reduce(ctx, c, 0, xs, collectives.Sum)
		if c.Rank() == 1 {
			fmt.Println(err)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output: collectives: Reduce: ranks passed different lengths: len(data) is 10 on rank 0, 11 on rank 2: collectives: ranks' calls do not match
}
