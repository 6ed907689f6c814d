// Command workers shows master-worker load balancing (a task farm) with
// package pool, the SPMD form of Python's Pool.map: rank 0 holds tasks of
// uneven cost, pool.Map hands them out as ranks finish (every rank, rank 0
// included, works), and rank 0 gets the results in order.
//
// The tasks are factoring numbers by trial division; their cost depends on
// the size of their second-largest prime factor, so it varies a lot. At the
// end rank 0 factors every number itself and checks that the results agree,
// prints how many tasks each rank did (each result names the rank that ran
// it), and exits non-zero if any result is wrong. -static hands out one
// contiguous block per rank instead, for comparison; -chunk sets how many
// tasks go out at a time.
//
//	gorun -n 4 ./examples/workers [-tasks 300] [-bits 44] [-seed 1] [-static] [-chunk k]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

// answer is one task's result: the prime factors, and the rank that found
// them.
type answer struct {
	Factors []uint64
	Rank    int
}

func main() {
	ntasks := flag.Int("tasks", 300, "numbers to factor")
	bits := flag.Int("bits", 44, "size of the numbers in bits (2..62); the cost of a task grows as 2^(bits/2)")
	seed := flag.Uint64("seed", 1, "seed of the random numbers")
	static := flag.Bool("static", false, "one contiguous block of tasks per rank, decided up front (no load balancing)")
	chunk := flag.Int("chunk", 0, "tasks handed out at a time (0: chosen from the task count)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()

	if *ntasks < 0 || *bits < 2 || *bits > 62 || *chunk < 0 {
		fail(fmt.Errorf("need -tasks >= 0, -bits in [2, 62] and -chunk >= 0; got -tasks %d -bits %d -chunk %d", *ntasks, *bits, *chunk))
	}
	var opts []pool.Option
	if *static {
		opts = append(opts, pool.Static())
	}
	if *chunk > 0 {
		opts = append(opts, pool.Chunk(*chunk))
	}

	var tasks []uint64
	if world.Rank() == 0 {
		tasks = numbers(*ntasks, *bits, *seed)
	}
	start := time.Now()
	results, err := pool.Map(ctx, world, tasks, func(ctx context.Context, n uint64) (answer, error) {
		return answer{factor(n), world.Rank()}, nil
	}, opts...)
	if err != nil {
		fail(err)
	}
	elapsed := time.Since(start)
	if world.Rank() != 0 {
		return
	}

	wrong := 0
	counts := make([]int, world.Size())
	for i, n := range tasks {
		r := results[i]
		if r.Rank < 0 || r.Rank >= world.Size() {
			fmt.Fprintf(os.Stderr, "workers: task %d: from rank %d, not in the job\n", i, r.Rank)
			wrong++
			continue
		}
		counts[r.Rank]++
		if want := factor(n); !slices.Equal(r.Factors, want) {
			if wrong < 5 {
				fmt.Fprintf(os.Stderr, "workers: task %d: factors of %d are %v, got %v\n", i, n, want, r.Factors)
			}
			wrong++
		}
	}
	for r, k := range counts {
		fmt.Printf("workers: rank %d did %d tasks\n", r, k)
	}
	if wrong > 0 {
		fmt.Fprintf(os.Stderr, "workers: WRONG: %d of %d results differ from the serial run\n", wrong, len(tasks))
		os.Exit(1)
	}
	fmt.Printf("workers: OK: %d tasks on %d ranks, every result matches the serial run; %v\n",
		len(tasks), world.Size(), elapsed.Round(time.Microsecond))
}

// numbers returns n random numbers below 2^bits, the same for every seed.
func numbers(n, bits int, seed uint64) []uint64 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	xs := make([]uint64, n)
	for i := range xs {
		xs[i] = 2 + rng.Uint64N(1<<bits-2)
	}
	return xs
}

// factor returns the prime factors of n >= 2 in increasing order, by trial
// division.
func factor(n uint64) []uint64 {
	var fs []uint64
	for n%2 == 0 {
		fs = append(fs, 2)
		n /= 2
	}
	for d := uint64(3); d*d <= n; d += 2 {
		for n%d == 0 {
			fs = append(fs, d)
			n /= d
		}
	}
	if n > 1 {
		fs = append(fs, n)
	}
	return fs
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "workers:", err)
	os.Exit(1)
}
