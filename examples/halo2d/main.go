// Command halo2d is the halo exchange of a 2-D stencil on a Cartesian grid
// of ranks: heat diffusion by Jacobi steps on an nx-by-ny plate that wraps
// around in x (periodic, a cylinder) and is held at 0 along its two y
// edges.
//
// DimsCreate picks the grid of ranks and CartCreate makes it, periodic in x
// only; each rank owns a block of the plate with a ghost cell on every
// side. Before each step a rank swaps its edges with its four neighbours
// (Shift names them) with Sendrecv: at the y edges of the plate the
// neighbour is ProcNull, so the Sendrecv does nothing there and the ghost
// cells keep the fixed 0. After the steps rank 0 gathers the blocks, runs
// the same steps serially, and compares: the answers agree to the last bit.
//
//	gorun -n 6 ./examples/halo2d [-nx 60] [-ny 40] [-steps 200]
package main

import (
	"context"
	"flag"
	"fmt"
	"math"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

const alpha = 0.2 // the diffusion number: stable up to 0.25 in 2-D

func main() {
	nx := flag.Int("nx", 60, "points across the plate (periodic)")
	ny := flag.Int("ny", 40, "points along the plate (held at 0 beyond both ends)")
	steps := flag.Int("steps", 200, "Jacobi steps")
	flag.Parse()
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		dims, err := mpi.DimsCreate(world.Size(), []int{0, 0})
		if err != nil {
			return err
		}
		if *nx < dims[0] || *ny < dims[1] || *steps < 0 {
			return fmt.Errorf("halo2d: need -nx >= %d, -ny >= %d and -steps >= 0", dims[0], dims[1])
		}
		grid, err := world.CartCreate(ctx, dims, []bool{true, false}, false)
		if err != nil {
			return err
		}
		co := grid.Coords(grid.Rank())
		b := newBlock(span(*nx, dims[0], co[0]), span(*ny, dims[1], co[1]))
		b.fill(*nx, *ny)
		for range *steps {
			if err := b.exchange(ctx, grid); err != nil {
				return err
			}
			b.step()
		}
		// Rank 0 gathers every block with its place, and checks.
		parts, err := collectives.Gather(ctx, grid.Comm, 0, b.interior())
		if err != nil || grid.Rank() != 0 {
			return err
		}
		got := make([]float64, *nx**ny)
		at := 0
		for r := range grid.Size() {
			c := grid.Coords(r)
			xs, ys := span(*nx, dims[0], c[0]), span(*ny, dims[1], c[1])
			for x := xs[0]; x < xs[1]; x++ {
				for y := ys[0]; y < ys[1]; y++ {
					got[x**ny+y] = parts[at]
					at++
				}
			}
		}
		want := serial(*nx, *ny, *steps)
		worst := 0.0
		for i := range want {
			worst = max(worst, math.Abs(got[i]-want[i]))
		}
		if worst != 0 {
			return fmt.Errorf("halo2d: the parallel answer differs from the serial one by up to %g", worst)
		}
		fmt.Printf("halo2d: OK: %dx%d plate, %d steps on a %dx%d grid of ranks: max error 0\n", *nx, *ny, *steps, dims[0], dims[1])
		return nil
	})
}

// initial is the plate's temperature at the start.
func initial(x, y, nx, ny int) float64 {
	return math.Sin(2*math.Pi*float64(x)/float64(nx)) * float64((y+1)*(ny-y))
}

// span is the range [lo, hi) of n points that part k of p holds.
func span(n, p, k int) [2]int { return [2]int{k * n / p, (k + 1) * n / p} }

// block is one rank's part of the plate, x0 <= x < x1 and y0 <= y < y1,
// with a ghost cell on every side: u[(i)*(w)+j] for i in [0, lx+2), j in
// [0, ly+2).
type block struct {
	xs, ys [2]int
	lx, ly int
	u, v   []float64
	col    []float64 // a column packed for sending
}

func newBlock(xs, ys [2]int) *block {
	lx, ly := xs[1]-xs[0], ys[1]-ys[0]
	return &block{xs: xs, ys: ys, lx: lx, ly: ly, u: make([]float64, (lx+2)*(ly+2)), v: make([]float64, (lx+2)*(ly+2)), col: make([]float64, lx)}
}

func (b *block) at(i, j int) int { return i*(b.ly+2) + j }

// fill sets the block's points to the plate's initial temperature.
func (b *block) fill(nx, ny int) {
	for i := range b.lx {
		for j := range b.ly {
			b.u[b.at(i+1, j+1)] = initial(b.xs[0]+i, b.ys[0]+j, nx, ny)
		}
	}
}

// exchange fills the ghost cells from the four neighbours. In x (dim 0)
// rows are contiguous; in y (dim 1) a column is packed first.
func (b *block) exchange(ctx context.Context, g *mpi.Cart) error {
	w := b.ly + 2
	src, dst := g.Shift(0, 1) // to the next x: my last row; from the previous: my ghost row 0
	if err := b.swap(ctx, g, dst, b.u[b.lx*w+1:b.lx*w+1+b.ly], src, b.u[1:1+b.ly], 1); err != nil {
		return err
	}
	src, dst = g.Shift(0, -1) // to the previous x: my first row; from the next: my ghost row lx+1
	if err := b.swap(ctx, g, dst, b.u[w+1:w+1+b.ly], src, b.u[(b.lx+1)*w+1:(b.lx+1)*w+1+b.ly], 2); err != nil {
		return err
	}
	for _, s := range []struct{ disp, send, recv, tag int }{{1, b.ly, 0, 3}, {-1, 1, b.ly + 1, 4}} {
		src, dst := g.Shift(1, s.disp)
		for i := range b.lx {
			b.col[i] = b.u[b.at(i+1, s.send)]
		}
		got, _, err := g.Sendrecv(ctx, dst, s.tag, mpi.AsBytes(b.col), src, s.tag)
		if err != nil {
			return err
		}
		if src == mpi.ProcNull {
			continue // the plate's fixed edge: the ghost column stays 0
		}
		in, err := mpi.FromBytes[float64](got)
		if err != nil || len(in) != b.lx {
			return fmt.Errorf("halo2d: a column of %d values from rank %d, want %d", len(in), src, b.lx)
		}
		for i, v := range in {
			b.u[b.at(i+1, s.recv)] = v
		}
	}
	return nil
}

// swap sends out to dst and receives from src into in.
func (b *block) swap(ctx context.Context, g *mpi.Cart, dst int, out []float64, src int, in []float64, tag int) error {
	got, _, err := g.Sendrecv(ctx, dst, tag, mpi.AsBytes(out), src, tag)
	if err != nil || src == mpi.ProcNull {
		return err
	}
	vals, err := mpi.FromBytes[float64](got)
	if err != nil || len(vals) != len(in) {
		return fmt.Errorf("halo2d: a row of %d values from rank %d, want %d", len(vals), src, len(in))
	}
	copy(in, vals)
	return nil
}

// step is one Jacobi step of the interior.
func (b *block) step() {
	for i := 1; i <= b.lx; i++ {
		for j := 1; j <= b.ly; j++ {
			b.v[b.at(i, j)] = update(b.u[b.at(i, j)], b.u[b.at(i-1, j)], b.u[b.at(i+1, j)], b.u[b.at(i, j-1)], b.u[b.at(i, j+1)])
		}
	}
	b.u, b.v = b.v, b.u
}

// update is the five-point stencil, in one order everywhere.
func update(c, xm, xp, ym, yp float64) float64 {
	return c + alpha*((xm+xp-2*c)+(ym+yp-2*c))
}

// interior is the block's own points, x-major.
func (b *block) interior() []float64 {
	out := make([]float64, 0, b.lx*b.ly)
	for i := 1; i <= b.lx; i++ {
		out = append(out, b.u[b.at(i, 1):b.at(i, 1)+b.ly]...)
	}
	return out
}

// serial runs the steps on the whole plate in one array.
func serial(nx, ny, steps int) []float64 {
	b := newBlock([2]int{0, nx}, [2]int{0, ny})
	b.fill(nx, ny)
	w := ny + 2
	for range steps {
		copy(b.u[0:w], b.u[nx*w:(nx+1)*w])       // periodic in x
		copy(b.u[(nx+1)*w:(nx+2)*w], b.u[w:2*w]) // the y ghosts stay 0
		b.step()
	}
	return b.interior()
}
