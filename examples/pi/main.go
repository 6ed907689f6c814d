// Command pi estimates π by Monte Carlo: each rank throws its share of
// random points at the unit square and counts those inside the quarter
// circle; Allreduce adds up the counts on every rank. Rank 0 prints the
// estimate and its error. Every rank checks that the estimate is within six
// standard deviations of π, and exits non-zero if not.
//
//	gorun -n 4 ./examples/pi -samples 100000000
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	samples := flag.Int64("samples", 10_000_000, "how many points to throw, over all ranks")
	seed := flag.Uint64("seed", 1, "random seed (each rank derives its own stream)")
	flag.Parse()
	if *samples < 1 {
		fmt.Fprintf(os.Stderr, "pi: -samples %d: must be at least 1\n", *samples)
		os.Exit(2)
	}
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pi:", err)
		os.Exit(1)
	}
	err = run(ctx, world, *samples, *seed)
	world.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pi: rank %d: %v\n", world.Rank(), err)
		os.Exit(1)
	}
}

func run(ctx context.Context, world *mpi.Comm, samples int64, seed uint64) error {
	start := time.Now()
	size, rank := int64(world.Size()), int64(world.Rank())
	mine := samples / size
	if rank < samples%size {
		mine++
	}
	// A stream of its own for each rank: ChaCha8 keyed by (seed, rank).
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(rank))
	rng := rand.New(rand.NewChaCha8(key))
	var inside int64
	for range mine {
		x, y := rng.Float64(), rng.Float64()
		if x*x+y*y < 1 {
			inside++
		}
	}
	counts, err := collectives.Allreduce(ctx, world, []int64{inside, mine}, collectives.Sum)
	if err != nil {
		return err
	}
	if counts[1] != samples {
		return fmt.Errorf("the ranks threw %d points, want %d", counts[1], samples)
	}
	p := float64(counts[0]) / float64(counts[1])
	est := 4 * p
	sigma := 4 * math.Sqrt(math.Pi/4*(1-math.Pi/4)/float64(samples))
	if rank == 0 {
		fmt.Printf("pi ≈ %.8f from %d points over %d ranks (error %.2g, σ %.2g) in %v\n",
			est, samples, size, est-math.Pi, sigma, time.Since(start).Round(time.Millisecond))
	}
	if math.Abs(est-math.Pi) > 6*sigma {
		return fmt.Errorf("estimate %v is more than 6σ (%.3g) from π", est, 6*sigma)
	}
	return nil
}
