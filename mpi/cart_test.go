package mpi_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestDimsCreate checks DimsCreate against what MPI_Dims_create returns.
func TestDimsCreate(t *testing.T) {
	for _, tc := range []struct {
		n          int
		dims, want []int
	}{
		{6, []int{0, 0}, []int{3, 2}},
		{7, []int{0, 0}, []int{7, 1}},
		{6, []int{0, 3, 0}, []int{2, 3, 1}},
		{12, []int{0, 0, 0}, []int{3, 2, 2}},
		{16, []int{0, 0}, []int{4, 4}},
		{1, []int{0, 0}, []int{1, 1}},
		{4, []int{0}, []int{4}},
		{8, []int{0, 0, 0}, []int{2, 2, 2}},
		{24, []int{0, 0, 0}, []int{4, 3, 2}},
		{36, []int{0, 0}, []int{6, 6}},
		{30, []int{0, 0, 0}, []int{5, 3, 2}},
		{60, []int{0, 0, 0}, []int{5, 4, 3}},
		{96, []int{0, 0}, []int{12, 8}},
		{64, []int{0, 0, 0}, []int{4, 4, 4}},
		{1024, []int{0, 0, 0, 0, 0}, []int{4, 4, 4, 4, 4}},
		{1 << 30, make([]int, 10), []int{8, 8, 8, 8, 8, 8, 8, 8, 8, 8}},
		{720720, make([]int, 6), []int{13, 11, 10, 9, 8, 7}},
		{2147483647, []int{0, 0, 0}, []int{2147483647, 1, 1}},
		{12, []int{2, 0}, []int{2, 6}},
		{12, []int{0, 2, 0}, []int{3, 2, 2}},
		{6, []int{2, 3}, []int{2, 3}},
		{5, nil, nil},
	} {
		dims := slices.Clone(tc.dims)
		got, err := mpi.DimsCreate(tc.n, dims)
		if tc.n == 5 && len(tc.dims) == 0 {
			if err == nil {
				t.Errorf("DimsCreate(5, []) = %v, want an error (no dimensions cannot hold 5)", got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("DimsCreate(%d, %v) = %v, %v; want %v", tc.n, tc.dims, got, err, tc.want)
		}
		if !slices.Equal(dims, tc.dims) {
			t.Errorf("DimsCreate(%d, %v) changed its dims to %v", tc.n, tc.dims, dims)
		}
	}
	// Every filled grid multiplies to n, non-increasing over the zeros.
	for n := 1; n <= 200; n++ {
		for k := 1; k <= 4; k++ {
			got, err := mpi.DimsCreate(n, make([]int, k))
			p := 1
			for _, d := range got {
				p *= d
			}
			if err != nil || p != n || !slices.IsSortedFunc(got, func(a, b int) int { return b - a }) {
				t.Fatalf("DimsCreate(%d, %d zeros) = %v, %v", n, k, got, err)
			}
		}
	}
}

func TestDimsCreateErrors(t *testing.T) {
	for _, tc := range []struct {
		n    int
		dims []int
		want string
	}{
		{0, []int{0}, "0 ranks"},
		{-3, []int{0}, "-3 ranks"},
		{6, []int{-1, 0}, "dims[0] is -1"},
		{7, []int{2, 0}, "cannot make a grid of 7"},
		{6, []int{2, 2}, "cannot make a grid of 6"},
		{4, []int{2, 3, 0}, "more than 4"},
	} {
		got, err := mpi.DimsCreate(tc.n, tc.dims)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DimsCreate(%d, %v) = %v, %v; want an error with %q", tc.n, tc.dims, got, err, tc.want)
		}
	}
}

// TestCartCoordsRankOf: RankOf(Coords(r)) is r in row-major order, and
// coordinates off the grid wrap in periodic dimensions, ProcNull in others.
func TestCartCoordsRankOf(t *testing.T) {
	mpitest.Run(t, 12, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{2, 3, 2}, []bool{false, true, false}, true)
		if err != nil {
			return err
		}
		if g.Rank() != c.Rank() || g.Size() != 12 {
			return fmt.Errorf("grid rank %d of %d, want %d of 12", g.Rank(), g.Size(), c.Rank())
		}
		for r := range 12 {
			co := g.Coords(r)
			want := []int{r / 6, r / 2 % 3, r % 2}
			if !slices.Equal(co, want) {
				return fmt.Errorf("Coords(%d) = %v, want %v", r, co, want)
			}
			if got := g.RankOf(co); got != r {
				return fmt.Errorf("RankOf(%v) = %d, want %d", co, got, r)
			}
		}
		for _, tc := range []struct {
			co   []int
			want int
		}{
			{[]int{1, 3, 1}, 7},  // wraps to (1, 0, 1)
			{[]int{0, -1, 0}, 4}, // wraps to (0, 2, 0)
			{[]int{1, 7, 0}, 8},  // wraps to (1, 1, 0)
			{[]int{2, 0, 0}, mpi.ProcNull},
			{[]int{-1, 0, 0}, mpi.ProcNull},
			{[]int{0, 0, 2}, mpi.ProcNull},
			{[]int{0, 0}, mpi.ProcNull},
		} {
			if got := g.RankOf(tc.co); got != tc.want {
				return fmt.Errorf("RankOf(%v) = %d, want %d", tc.co, got, tc.want)
			}
		}
		if g.Coords(12) != nil || g.Coords(-1) != nil {
			return fmt.Errorf("Coords of a rank off the grid is not nil")
		}
		return nil
	})
}

// TestCartShift: neighbors in a periodic and a non-periodic dimension,
// ProcNull only at the non-periodic edges.
func TestCartShift(t *testing.T) {
	mpitest.Run(t, 6, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{3, 2}, []bool{false, true}, false)
		if err != nil {
			return err
		}
		co := g.Coords(g.Rank())
		at := func(i, j int) int {
			if i < 0 || i >= 3 {
				return mpi.ProcNull
			}
			return i*2 + (j+2)%2
		}
		for disp := -2; disp <= 2; disp++ {
			src, dst := g.Shift(0, disp)
			if src != at(co[0]-disp, co[1]) || dst != at(co[0]+disp, co[1]) {
				return fmt.Errorf("Shift(0, %d) at %v = %d, %d; want %d, %d", disp, co, src, dst, at(co[0]-disp, co[1]), at(co[0]+disp, co[1]))
			}
			src, dst = g.Shift(1, disp)
			if src != at(co[0], co[1]-disp) || dst != at(co[0], co[1]+disp) {
				return fmt.Errorf("Shift(1, %d) at %v = %d, %d", disp, co, src, dst)
			}
		}
		src, dst := g.Shift(0, 1)
		if (co[0] == 0) != (src == mpi.ProcNull) || (co[0] == 2) != (dst == mpi.ProcNull) {
			return fmt.Errorf("Shift(0, 1) at %v = %d, %d: ProcNull only at the edges", co, src, dst)
		}
		return nil
	})
}

// TestCartHalo exchanges halos on a 2-D periodic grid with Shift and
// Sendrecv: each rank ends with its four neighbors' ranks.
func TestCartHalo(t *testing.T) {
	for _, n := range []int{1, 4, 6, 9} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				dims, err := mpi.DimsCreate(c.Size(), []int{0, 0})
				if err != nil {
					return err
				}
				g, err := c.CartCreate(ctx, dims, []bool{true, true}, false)
				if err != nil {
					return err
				}
				co := g.Coords(g.Rank())
				for dim := range 2 {
					for _, disp := range []int{1, -1} {
						src, dst := g.Shift(dim, disp)
						b, st, err := g.Sendrecv(ctx, dst, dim, []byte{byte(g.Rank())}, src, dim)
						if err != nil {
							return err
						}
						nb := slices.Clone(co)
						nb[dim] = (co[dim] - disp + dims[dim]) % dims[dim]
						want := g.RankOf(nb)
						if len(b) != 1 || int(b[0]) != want || st.Source != want {
							return fmt.Errorf("at %v, dim %d disp %d: got %v from %d, want rank %d", co, dim, disp, b, st.Source, want)
						}
					}
				}
				return nil
			})
		})
	}
}

// TestCartSub splits a 3x4 grid into its rows and its columns.
func TestCartSub(t *testing.T) {
	mpitest.Run(t, 12, func(ctx context.Context, c *mpi.Comm) error {
		g, err := c.CartCreate(ctx, []int{3, 4}, []bool{true, false}, false)
		if err != nil {
			return err
		}
		co := g.Coords(g.Rank())
		row, err := g.Sub(ctx, []bool{false, true})
		if err != nil {
			return err
		}
		col, err := g.Sub(ctx, []bool{true, false})
		if err != nil {
			return err
		}
		if !slices.Equal(row.Dims(), []int{4}) || !slices.Equal(row.Periodic(), []bool{false}) || row.Rank() != co[1] {
			return fmt.Errorf("row at %v: dims %v periodic %v rank %d", co, row.Dims(), row.Periodic(), row.Rank())
		}
		if !slices.Equal(col.Dims(), []int{3}) || !slices.Equal(col.Periodic(), []bool{true}) || col.Rank() != co[0] {
			return fmt.Errorf("column at %v: dims %v periodic %v rank %d", co, col.Dims(), col.Periodic(), col.Rank())
		}
		// Each sub-grid's neighbors are this rank's neighbors in the grid:
		// what comes from the row's src is the grid's left neighbor, and
		// the column's wraps around.
		src, dst := row.Shift(0, 1)
		b, _, err := row.Sendrecv(ctx, dst, 0, []byte{byte(g.Rank())}, src, 0)
		if err != nil {
			return err
		}
		if want := g.RankOf([]int{co[0], co[1] - 1}); (want == mpi.ProcNull) != (len(b) == 0) || (len(b) == 1 && int(b[0]) != want) {
			return fmt.Errorf("row at %v: got %v from the left, want rank %d", co, b, want)
		}
		src, dst = col.Shift(0, 1)
		b, _, err = col.Sendrecv(ctx, dst, 0, []byte{byte(g.Rank())}, src, 0)
		if err != nil {
			return err
		}
		if want := g.RankOf([]int{co[0] - 1, co[1]}); len(b) != 1 || int(b[0]) != want {
			return fmt.Errorf("column at %v: got %v from above, want rank %d", co, b, want)
		}
		self, err := g.Sub(ctx, []bool{false, false})
		if err != nil {
			return err
		}
		if self.Size() != 1 || len(self.Dims()) != 0 || self.RankOf(nil) != 0 {
			return fmt.Errorf("keeping no dimension: size %d, dims %v", self.Size(), self.Dims())
		}
		if _, err := g.Sub(ctx, []bool{true}); err == nil || !strings.Contains(err.Error(), "1 keep flags for a 2-dimensional grid") {
			return fmt.Errorf("Sub with one flag of two: %v", err)
		}
		return nil
	})
}

// TestCartCreateErrors: bad grids are errors naming the problem, and ranks
// beyond a smaller grid get nil.
func TestCartCreateErrors(t *testing.T) {
	mpitest.Run(t, 6, func(ctx context.Context, c *mpi.Comm) error {
		for _, tc := range []struct {
			dims     []int
			periodic []bool
			want     string
		}{
			{[]int{3, 3}, []bool{false, false}, "dims [3 3] make a grid of 9 ranks, but the communicator has 6"},
			{[]int{-2, 3}, []bool{false, false}, "dims[0] is -2"},
			{[]int{0, 3}, []bool{false, false}, "dims[0] is 0"},
			{[]int{2, 3}, []bool{false}, "2 dims but 1 periodic flags"},
			{[]int{1 << 20, 1 << 20}, []bool{false, false}, "more than"},
		} {
			g, err := c.CartCreate(ctx, tc.dims, tc.periodic, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				return fmt.Errorf("CartCreate(%v, %v) = %v, %v; want an error with %q", tc.dims, tc.periodic, g, err, tc.want)
			}
		}
		g, err := c.CartCreate(ctx, []int{2, 2}, []bool{false, false}, false)
		if err != nil {
			return err
		}
		if (g == nil) != (c.Rank() >= 4) {
			return fmt.Errorf("rank %d of a 2x2 grid in 6 ranks: Cart %v", c.Rank(), g)
		}
		if g != nil && g.Size() != 4 {
			return fmt.Errorf("a 2x2 grid of %d ranks", g.Size())
		}
		one, err := c.CartCreate(ctx, nil, nil, false)
		if err != nil {
			return err
		}
		if (one == nil) != (c.Rank() != 0) || (one != nil && one.Size() != 1) {
			return fmt.Errorf("rank %d: a grid of no dimensions: %v", c.Rank(), one)
		}
		return nil
	})
}
