// Command stencil times a latency-bound 1-D stencil, the pattern of a
// domain-decomposed solver: each rank holds -points points of a periodic
// rod with a ghost cell at each end; every step it swaps its edge values
// with both neighbours (two Sendrecvs of one float64), takes a Jacobi step,
// and sums the squared change over every rank (an Allreduce of one value),
// as a solver checks its residual. testdata/stencil.c is the same program
// in C on MPI, for the side-by-side figures of `make bench`.
//
//	gorun -n 2 ./bench/stencil -points 1000 -steps 2000
//	gorun -n 2 ./bench/stencil -points 100000 -steps 200 -compute-only
//
// It prints "result us_per_step=... residual=..." on rank 0: the mean wall
// time of a step (after -warmup untimed steps and a Barrier) and the last
// residual, which the C version prints too, to the same digits. With
// -compute-only every rank runs its steps without communicating: the time
// of the Go loop alone.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

const alpha = 0.25 // the diffusion number: stable at most 0.5

func main() {
	points := flag.Int("points", 1000, "points per rank")
	steps := flag.Int("steps", 2000, "timed steps")
	warmup := flag.Int("warmup", 100, "untimed steps first")
	computeOnly := flag.Bool("compute-only", false, "no communication: the loop alone")
	flag.Parse()
	if *points < 1 || *steps < 1 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "stencil: -points and -steps must be at least 1, -warmup not negative")
		os.Exit(2)
	}
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		s := newRod(world.Rank(), *points)
		step := s.exchange
		if *computeOnly {
			step = func(context.Context, *mpi.Comm) (float64, error) { return s.compute(), nil }
		}
		for range *warmup {
			mpi.Must(step(ctx, world))
		}
		mpi.Check(collectives.Barrier(ctx, world))
		t0 := time.Now()
		var res float64
		for range *steps {
			res = mpi.Must(step(ctx, world))
		}
		us := float64(time.Since(t0).Microseconds()) / float64(*steps)
		if world.Rank() == 0 {
			fmt.Printf("result us_per_step=%.3f residual=%.6e\n", us, res)
		}
		return nil
	})
}

// rod is one rank's block: u[1..n] with ghost cells u[0] and u[n+1].
type rod struct {
	u, v       []float64
	out, in    [8]byte
	rank, size int
}

func newRod(rank, n int) *rod {
	s := &rod{u: make([]float64, n+2), v: make([]float64, n+2), rank: rank}
	for i := 1; i <= n; i++ {
		s.u[i] = math.Sin(float64(rank*n+i) / 100)
	}
	return s
}

// exchange swaps the edges with both neighbours, steps, and returns the
// residual summed over every rank.
func (s *rod) exchange(ctx context.Context, c *mpi.Comm) (float64, error) {
	n, p := len(s.u)-2, c.Size()
	left, right := (c.Rank()+p-1)%p, (c.Rank()+1)%p
	var err error
	if s.u[0], err = s.sendrecv(ctx, c, s.u[n], right, left, 1); err != nil {
		return 0, err
	}
	if s.u[n+1], err = s.sendrecv(ctx, c, s.u[1], left, right, 2); err != nil {
		return 0, err
	}
	return collectives.AllreduceValue(ctx, c, s.compute(), collectives.Sum)
}

// sendrecv sends x to dst and returns what src sent, with tag.
func (s *rod) sendrecv(ctx context.Context, c *mpi.Comm, x float64, dst, src, tag int) (float64, error) {
	binary.LittleEndian.PutUint64(s.out[:], math.Float64bits(x))
	got, _, err := c.Sendrecv(ctx, dst, tag, s.out[:], src, tag)
	if err != nil || len(got) != 8 {
		return 0, fmt.Errorf("stencil: halo from rank %d: %d bytes, %v", src, len(got), err)
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(got)), nil
}

// compute takes one Jacobi step and returns this rank's squared change.
func (s *rod) compute() float64 {
	u, v := s.u, s.v
	res := 0.0
	for i := 1; i < len(u)-1; i++ {
		v[i] = u[i] + alpha*(u[i-1]-2*u[i]+u[i+1])
		d := v[i] - u[i]
		res += d * d
	}
	s.u, s.v = v, u
	return res
}
