package collectives

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestTwoLevelTree runs the collectives past starMax ranks, where the first
// phase goes through group leaders, and checks a mismatch there too.
func TestTwoLevelTree(t *testing.T) {
	n := starMax + 6
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		r := c.Rank()
		if err := Barrier(ctx, c); err != nil {
			return err
		}
		b, err := Bcast(ctx, c, n-2, []int{n - 2, 7})
		if err != nil || b[0] != n-2 || b[1] != 7 {
			return fmt.Errorf("Bcast: %v %v", b, err)
		}
		s, err := Allreduce(ctx, c, []int{r, 1}, Sum)
		if err != nil || s[0] != n*(n-1)/2 || s[1] != n {
			return fmt.Errorf("Allreduce: %v %v", s, err)
		}
		red, err := Reduce(ctx, c, 13, []int{r}, Max)
		if err != nil || (r == 13) != (red != nil) || r == 13 && red[0] != n-1 {
			return fmt.Errorf("Reduce: %v %v", red, err)
		}
		all := make([]int, 2*n)
		for i := range all {
			all[i] = i
		}
		part, err := Scatter(ctx, c, 40, all)
		if err != nil || len(part) != 2 || part[0] != 2*r {
			return fmt.Errorf("Scatter: %v %v", part, err)
		}
		g, err := Gather(ctx, c, 66, part)
		if err != nil || r == 66 && (len(g) != 2*n || g[2*n-1] != 2*n-1) {
			return fmt.Errorf("Gather: %v %v", g, err)
		}
		ag, err := Allgather(ctx, c, []int{r})
		if err != nil || len(ag) != n || ag[n-1] != n-1 {
			return fmt.Errorf("Allgather: %v %v", ag, err)
		}
		sc, err := Scan(ctx, c, []int{1}, Sum)
		if err != nil || sc[0] != r+1 {
			return fmt.Errorf("Scan: %v %v", sc, err)
		}
		out := make([]int, n)
		for j := range out {
			out[j] = r*1000 + j
		}
		at, err := Alltoall(ctx, c, out)
		if err != nil || at[n-1] != (n-1)*1000+r {
			return fmt.Errorf("Alltoall: %v", err)
		}
		root := 0
		if r == n-1 {
			root = 1
		}
		if _, err := Bcast(ctx, c, root, []int{1}); !errors.Is(err, ErrMismatch) {
			return fmt.Errorf("Bcast with rank %d passing root 1: %v", n-1, err)
		}
		return nil
	})
}

// TestDifferentCollectives: ranks that call different collectives at the
// same point all get ErrMismatch, whichever the two collectives are, since
// every call's first phase has the same shape.
func TestDifferentCollectives(t *testing.T) {
	calls := []struct {
		name string
		call func(ctx context.Context, c *mpi.Comm) error
	}{
		{"Barrier", func(ctx context.Context, c *mpi.Comm) error { return Barrier(ctx, c) }},
		{"Bcast", func(ctx context.Context, c *mpi.Comm) error { _, err := Bcast(ctx, c, 1, []int{1}); return err }},
		{"Scatter", func(ctx context.Context, c *mpi.Comm) error {
			_, err := Scatter(ctx, c, 2, make([]int, 9))
			return err
		}},
		{"Gather", func(ctx context.Context, c *mpi.Comm) error { _, err := Gather(ctx, c, 0, []int{1}); return err }},
		{"Allgather", func(ctx context.Context, c *mpi.Comm) error { _, err := Allgather(ctx, c, []int{1}); return err }},
		{"Allreduce", func(ctx context.Context, c *mpi.Comm) error {
			_, err := Allreduce(ctx, c, []int{1}, Sum)
			return err
		}},
		{"Allreduce/large", func(ctx context.Context, c *mpi.Comm) error {
			_, err := Allreduce(ctx, c, make([]float64, 10000), Sum)
			return err
		}},
		{"Scan", func(ctx context.Context, c *mpi.Comm) error { _, err := Scan(ctx, c, []int{1}, Sum); return err }},
		{"Alltoall", func(ctx context.Context, c *mpi.Comm) error {
			_, err := Alltoall(ctx, c, make([]int, 3))
			return err
		}},
	}
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		for i, a := range calls {
			for _, b := range calls[i+1:] {
				call := a.call
				if c.Rank() == 2 {
					call = b.call
				}
				if err := call(ctx, c); !errors.Is(err, ErrMismatch) {
					return fmt.Errorf("%s and %s: %v", a.name, b.name, err)
				}
			}
		}
		return nil
	})
}
