// Command sum splits an array over the ranks and adds it up. Rank 0 builds
// N float64 values; Scatter gives each rank a contiguous share (the shares
// differ by at most one element); each rank sums its share; Reduce brings
// the partial sums to rank 0, which checks the total against a serial sum
// and prints it, the share of each rank and the time. It exits non-zero if
// the total is wrong.
//
//	gorun -n 4 ./examples/sum
//	gorun -n 64 ./examples/sum -n 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	n := flag.Int("n", 10_000_000, "how many numbers to add up")
	flag.Parse()
	if *n < 0 {
		fmt.Fprintf(os.Stderr, "sum: -n %d: must not be negative\n", *n)
		os.Exit(2)
	}
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sum:", err)
		os.Exit(1)
	}
	err = run(ctx, world, *n)
	world.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sum: rank %d: %v\n", world.Rank(), err)
		os.Exit(1)
	}
}

// value is the i-th number: in (1, 2], so that a lost or doubled element
// changes the total by more than any rounding could.
func value(i int) float64 { return 1 + 1/float64(1+i%1000) }

func run(ctx context.Context, world *mpi.Comm, n int) error {
	var data []float64
	if world.Rank() == 0 {
		data = make([]float64, n)
		for i := range data {
			data[i] = value(i)
		}
	}
	start := time.Now()
	part, err := collectives.Scatter(ctx, world, 0, data)
	if err != nil {
		return err
	}
	local := 0.0
	for _, x := range part {
		local += x
	}
	total, err := collectives.Reduce(ctx, world, 0, []float64{local}, collectives.Sum)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	shares, err := collectives.Gather(ctx, world, 0, []int{len(part)})
	if err != nil {
		return err
	}
	if world.Rank() != 0 {
		return nil
	}

	serial := 0.0
	for _, x := range data {
		serial += x
	}
	// Any order of n additions is within n·u·Σ|x| of the exact sum (u =
	// 2^-53); every element is above 1, so a lost or doubled one shows.
	tol := float64(n) * 0x1p-53 * serial
	fmt.Printf("sum of %d numbers over %d ranks: %.6f (serial %.6f, difference %.3g)\n",
		n, world.Size(), total[0], serial, total[0]-serial)
	fmt.Printf("shares (elements per rank): %v\n", shares)
	fmt.Printf("time: %v for Scatter, local sums and Reduce\n", elapsed.Round(time.Microsecond))
	if math.Abs(total[0]-serial) > tol {
		return fmt.Errorf("wrong sum: %v, want %v within %.3g", total[0], serial, tol)
	}
	counted := 0
	for _, s := range shares {
		counted += s
	}
	if counted != n {
		return errors.New("the shares do not add up to n")
	}
	return nil
}
