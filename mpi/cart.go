package mpi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Cart is a communicator whose ranks form a Cartesian grid, as MPI's
// Cartesian topologies: rank r sits at Coords(r), in row-major order (the
// last dimension varies fastest), and RankOf and Shift name neighbors.
// The embedded Comm is an ordinary communicator of the grid's ranks.
type Cart struct {
	*Comm
	dims     []int
	periodic []bool
}

// Dims returns the extent of each dimension of t's grid (a copy).
func (t *Cart) Dims() []int { return slices.Clone(t.dims) }

// Periodic returns whether each dimension of t's grid wraps around (a
// copy).
func (t *Cart) Periodic() []bool { return slices.Clone(t.periodic) }

// gridSize returns the product of dims, checking that each is positive and
// that the product does not overflow.
func gridSize(op string, dims []int) (int, error) {
	p := 1
	for i, d := range dims {
		if d <= 0 {
			return 0, fmt.Errorf("mpi: %s: dims[%d] is %d: each dimension must be at least 1 (DimsCreate fills zeros)", op, i, d)
		}
		if p > math.MaxInt32/d {
			return 0, fmt.Errorf("mpi: %s: dims %v: the grid has more than %d ranks", op, dims, math.MaxInt32)
		}
		p *= d
	}
	return p, nil
}

// CartCreate makes a Cartesian grid of the first ranks of c, with dims[i]
// ranks along dimension i, wrapping around in the dimensions where
// periodic is true (MPI_Cart_create). Grid rank r is rank r of c (the grid
// is row-major): reorder is accepted but ignored, as MPI allows. A grid of
// fewer ranks than c is allowed, as in MPI: the ranks of c beyond it get a
// nil Cart and no error, like Split's negative color. A grid of more ranks
// than c, a dimension that is not at least 1 (fill zeros with DimsCreate)
// or len(periodic) != len(dims) is an error. No dimensions at all make a
// grid of one rank (rank 0). Every rank of c must call it, with the same
// arguments; it is a Split.
func (c *Comm) CartCreate(ctx context.Context, dims []int, periodic []bool, reorder bool) (*Cart, error) {
	if ctx == nil {
		return nil, nilContext("cartcreate")
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	if len(periodic) != len(dims) {
		return nil, fmt.Errorf("mpi: cartcreate: %d dims but %d periodic flags: give one flag per dimension", len(dims), len(periodic))
	}
	p, err := gridSize("cartcreate", dims)
	if err != nil {
		return nil, err
	}
	if p > c.Size() {
		return nil, fmt.Errorf("mpi: cartcreate: dims %v make a grid of %d ranks, but the communicator has %d", dims, p, c.Size())
	}
	color := 0
	if c.rank >= p {
		color = -1
	}
	d, err := c.Split(ctx, color, c.rank)
	if err != nil || d == nil {
		return nil, err
	}
	return &Cart{Comm: d, dims: slices.Clone(dims), periodic: slices.Clone(periodic)}, nil
}

// Coords returns the grid coordinates of rank (MPI_Cart_coords), or nil if
// rank is not a rank of t.
func (t *Cart) Coords(rank int) []int {
	if rank < 0 || rank >= t.Size() {
		return nil
	}
	co := make([]int, len(t.dims))
	for i := len(t.dims) - 1; i >= 0; i-- {
		co[i] = rank % t.dims[i]
		rank /= t.dims[i]
	}
	return co
}

// RankOf returns the rank at coords (MPI_Cart_rank). A coordinate out of
// range wraps around in a periodic dimension, and is off the grid in the
// others: then, or when len(coords) is not the number of dimensions,
// RankOf returns ProcNull, so that the result may be passed straight to
// Send, Recv or Sendrecv.
func (t *Cart) RankOf(coords []int) int {
	if len(coords) != len(t.dims) {
		return ProcNull
	}
	r := 0
	for i, x := range coords {
		d := t.dims[i]
		if x < 0 || x >= d {
			if !t.periodic[i] {
				return ProcNull
			}
			x = ((x % d) + d) % d
		}
		r = r*d + x
	}
	return r
}

// Shift returns the ranks that a shift by disp along dimension dim moves
// data from and to, for this rank (MPI_Cart_shift): src is disp steps
// back, dst disp steps forward. At the edge of a dimension that is not
// periodic, either may be ProcNull; pass both to Sendrecv. A dim that is
// not a dimension of t panics, like an index out of range.
func (t *Cart) Shift(dim, disp int) (src, dst int) {
	if dim < 0 || dim >= len(t.dims) {
		panic(fmt.Sprintf("mpi: cart shift: dimension %d of a %d-dimensional grid", dim, len(t.dims)))
	}
	co := t.Coords(t.Rank())
	x := co[dim]
	co[dim] = x - disp
	src = t.RankOf(co)
	co[dim] = x + disp
	dst = t.RankOf(co)
	return src, dst
}

// Sub splits t into the grids spanned by the dimensions where keep is true
// (MPI_Cart_sub): this rank's sub-grid holds the ranks whose coordinates
// agree with its own in every dimension dropped, ranked by their
// coordinates in those kept. Keeping none gives a grid of this rank alone.
// Every rank of t must call it, with the same keep; it is a Split.
func (t *Cart) Sub(ctx context.Context, keep []bool) (*Cart, error) {
	if ctx == nil {
		return nil, nilContext("cartsub")
	}
	if len(keep) != len(t.dims) {
		return nil, fmt.Errorf("mpi: cartsub: %d keep flags for a %d-dimensional grid: give one per dimension", len(keep), len(t.dims))
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	co := t.Coords(t.Rank())
	color, key := 0, 0
	var dims []int
	var periodic []bool
	for i, k := range keep {
		if k {
			key = key*t.dims[i] + co[i]
			dims = append(dims, t.dims[i])
			periodic = append(periodic, t.periodic[i])
		} else {
			color = color*t.dims[i] + co[i]
		}
	}
	d, err := t.Split(ctx, color, key)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, errors.New("mpi: cartsub: no sub-grid for this rank")
	}
	return &Cart{Comm: d, dims: dims, periodic: periodic}, nil
}

// DimsCreate returns a grid of n ranks in len(dims) dimensions
// (MPI_Dims_create): the non-zero entries of dims are kept, and the zeros
// are filled with extents as close to each other as possible, in
// non-increasing order, whose product with the kept entries is n. dims is
// not changed. n out of [1, MaxInt32], a negative entry, or an n that the
// kept entries do not divide (or, with no zeros, do not multiply to) is an
// error.
func DimsCreate(n int, dims []int) ([]int, error) {
	if n < 1 || n > math.MaxInt32 {
		return nil, fmt.Errorf("mpi: dimscreate: %d ranks: need 1 to %d", n, math.MaxInt32)
	}
	fixed, free := 1, 0
	for i, d := range dims {
		switch {
		case d < 0:
			return nil, fmt.Errorf("mpi: dimscreate: dims[%d] is %d: an entry is 0 (to fill) or positive", i, d)
		case d == 0:
			free++
		default:
			if fixed > n/d {
				return nil, fmt.Errorf("mpi: dimscreate: the given dims %v multiply to more than %d ranks", dims, n)
			}
			fixed *= d
		}
	}
	if n%fixed != 0 || (free == 0 && fixed != n) {
		return nil, fmt.Errorf("mpi: dimscreate: the given dims %v (product %d) cannot make a grid of %d ranks", dims, fixed, n)
	}
	fill := balanced(n/fixed, free)
	out := slices.Clone(dims)
	j := 0
	for i := range out {
		if out[i] == 0 {
			out[i] = fill[j]
			j++
		}
	}
	return out, nil
}

// balanced returns k factors of m in non-increasing order, the largest
// minus the smallest as small as possible (ties: the smallest largest).
func balanced(m, k int) []int {
	if k == 0 {
		return nil
	}
	var divs []int
	for d := 1; d*d <= m; d++ {
		if m%d == 0 {
			divs = append(divs, d)
			if d != m/d {
				divs = append(divs, m/d)
			}
		}
	}
	slices.Sort(divs)
	var best, cur []int
	// search fills cur with factors of rest, each at most max, and keeps
	// the most balanced complete factorization.
	var search func(rest, max, left int)
	search = func(rest, max, left int) {
		if left == 1 {
			if rest > max {
				return
			}
			cur = append(cur, rest)
			if best == nil || spread(cur) < spread(best) || (spread(cur) == spread(best) && cur[0] < best[0]) {
				best = slices.Clone(cur)
			}
			cur = cur[:len(cur)-1]
			return
		}
		for i := len(divs) - 1; i >= 0; i-- {
			d := divs[i]
			if d > max || rest%d != 0 {
				continue
			}
			if pow(d, left) < rest {
				break // d and every smaller factor leave too much for the rest
			}
			if best != nil && len(cur) > 0 && cur[0]-d > spread(best) {
				break
			}
			cur = append(cur, d)
			search(rest/d, d, left-1)
			cur = cur[:len(cur)-1]
		}
	}
	search(m, m, k)
	return best
}

func spread(f []int) int { return f[0] - f[len(f)-1] }

// pow returns d**k, or a value at least m+1 once it passes any m this
// package factors (it saturates instead of overflowing).
func pow(d, k int) int {
	p := 1
	for range k {
		if p > math.MaxInt32 {
			return p
		}
		p *= d
	}
	return p
}
