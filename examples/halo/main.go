// Command halo shows the halo (ghost cell) exchange of a domain-decomposed
// stencil code: 1-D heat diffusion by Jacobi steps on a rod whose points are
// split into contiguous blocks, one per rank.
//
// Each rank keeps its block with one ghost cell at each end. Before every
// step it swaps edge values with its left and right neighbours using Sendrecv
// (first everything moves right, then everything moves left); the two ends of
// the rod are not periodic but held at fixed temperatures. After the steps
// rank 0 gathers the blocks (collectives.Gather), runs the same steps
// serially, and compares: the answers must agree to the last bit, since every
// point is computed with the same arithmetic in the same order. It prints the
// largest difference and the time, and exits non-zero if they differ.
//
//	gorun -n 4 ./examples/halo [-points 20000] [-steps 500]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

// Tags of the two halo shifts.
const (
	tagRight = 1 // a rank's last point going to its right neighbour's left ghost
	tagLeft  = 2 // a rank's first point going to its left neighbour's right ghost
)

// Boundary temperatures at the two ends of the rod, and the diffusion number
// (alpha*dt/dx^2; at most 0.5 for the explicit scheme to be stable).
const (
	leftEnd, rightEnd = 1.0, 0.0
	alpha             = 0.25
)

func main() {
	points := flag.Int("points", 20000, "points on the rod (split across the ranks)")
	steps := flag.Int("steps", 500, "Jacobi steps")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()

	if *points < world.Size() || *steps < 0 {
		fail(fmt.Errorf("need -points >= the number of ranks (%d) and -steps >= 0; got -points %d -steps %d",
			world.Size(), *points, *steps))
	}

	if err := collectives.Barrier(ctx, world); err != nil {
		fail(err)
	}
	start := time.Now()
	lo, hi := block(*points, world.Size(), world.Rank())
	u := initial(*points, lo, hi)
	u, err = diffuse(ctx, world, u, *steps)
	if err != nil {
		fail(err)
	}
	all, err := collectives.Gather(ctx, world, 0, u[1:len(u)-1])
	if err != nil {
		fail(err)
	}
	elapsed := time.Since(start)
	if world.Rank() != 0 {
		return
	}

	serialStart := time.Now()
	want := serial(*points, *steps)
	serialTime := time.Since(serialStart)
	maxErr := 0.0
	for i := range want {
		maxErr = math.Max(maxErr, math.Abs(all[i]-want[i]))
	}
	if len(all) != len(want) || maxErr != 0 {
		fmt.Fprintf(os.Stderr, "halo: WRONG: gathered %d points, want %d; max error %g after %d steps\n",
			len(all), len(want), maxErr, *steps)
		os.Exit(1)
	}
	fmt.Printf("halo: OK: %d points, %d steps on %d ranks: max error %g against the serial run; parallel %v, serial %v\n",
		*points, *steps, world.Size(), maxErr, elapsed.Round(time.Microsecond), serialTime.Round(time.Microsecond))
}

// block returns the global indices [lo, hi) of rank's points: contiguous
// blocks whose lengths differ by at most one, lower ranks longer (the layout
// collectives.Scatter uses).
func block(points, size, rank int) (lo, hi int) {
	q, r := points/size, points%size
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// initial returns the points [lo, hi) of the starting temperature profile,
// with a ghost cell at each end (set to the boundary temperature where the
// block touches an end of the rod): a hot bump in the middle of a cold rod.
func initial(points, lo, hi int) []float64 {
	u := make([]float64, hi-lo+2)
	for i := lo; i < hi; i++ {
		x := (float64(i) + 0.5) / float64(points)
		u[i-lo+1] = math.Exp(-100 * (x - 0.5) * (x - 0.5))
	}
	u[0], u[len(u)-1] = leftEnd, rightEnd
	return u
}

// diffuse runs steps Jacobi steps on u (a block with its two ghost cells)
// and returns the result, exchanging ghost cells with the neighbours before
// every step.
func diffuse(ctx context.Context, c *mpi.Comm, u []float64, steps int) ([]float64, error) {
	left, right := c.Rank()-1, c.Rank()+1 // -1 and Size(): no neighbour, a fixed end
	next := make([]float64, len(u))
	next[0], next[len(next)-1] = u[0], u[len(u)-1]
	n := len(u) - 2
	for range steps {
		// Shift right: my last point to my right neighbour; my left ghost from my left one.
		g, err := shift(ctx, c, right, left, tagRight, u[n])
		if err != nil {
			return nil, err
		}
		if left >= 0 {
			u[0] = g
		}
		// Shift left: my first point to my left neighbour; my right ghost from my right one.
		g, err = shift(ctx, c, left, right, tagLeft, u[1])
		if err != nil {
			return nil, err
		}
		if right < c.Size() {
			u[n+1] = g
		}
		step(next, u)
		u, next = next, u
	}
	return u, nil
}

// shift sends v to dst and returns the value received from src, where either
// may be outside [0, Size()) (the end of the rod: nothing to send to or
// receive from, like MPI_PROC_NULL).
func shift(ctx context.Context, c *mpi.Comm, dst, src, tag int, v float64) (float64, error) {
	hasDst, hasSrc := dst >= 0 && dst < c.Size(), src >= 0 && src < c.Size()
	out := mpi.AsBytes([]float64{v})
	var in []byte
	var err error
	switch {
	case hasDst && hasSrc:
		in, _, err = c.Sendrecv(ctx, dst, tag, out, src, tag)
	case hasDst:
		return 0, c.Send(ctx, dst, tag, out)
	case hasSrc:
		in, _, err = c.Recv(ctx, src, tag)
	default:
		return 0, nil // a world of one
	}
	if err != nil {
		return 0, err
	}
	xs, err := mpi.FromBytes[float64](in)
	if err != nil {
		return 0, err
	}
	if len(xs) != 1 {
		return 0, fmt.Errorf("a ghost cell message from rank %d holds %d values, want 1", src, len(xs))
	}
	return xs[0], nil
}

// step computes one Jacobi step of u into next; both have a ghost cell at
// each end, which step reads but does not write.
func step(next, u []float64) {
	for i := 1; i < len(u)-1; i++ {
		next[i] = u[i] + alpha*(u[i-1]-2*u[i]+u[i+1])
	}
}

// serial runs the same steps on the whole rod in one array and returns its
// points.
func serial(points, steps int) []float64 {
	u := initial(points, 0, points)
	next := make([]float64, len(u))
	next[0], next[len(next)-1] = u[0], u[len(u)-1]
	for range steps {
		step(next, u)
		u, next = next, u
	}
	return u[1 : len(u)-1]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "halo:", err)
	os.Exit(1)
}
