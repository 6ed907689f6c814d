package collectives

import (
	"context"
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

func TestSmoke(t *testing.T) {
	mpitest.Run(t, 5, func(ctx context.Context, c *mpi.Comm) error {
		if err := Barrier(ctx, c); err != nil {
			return err
		}
		b, err := Bcast(ctx, c, 2, []int{1, 2, 3})
		if err != nil {
			return err
		}
		if fmt.Sprint(b) != "[1 2 3]" {
			return fmt.Errorf("bcast %v", b)
		}
		s, err := Scatter(ctx, c, 1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
		if err != nil {
			return err
		}
		g, err := Gather(ctx, c, 3, s)
		if err != nil {
			return err
		}
		if c.Rank() == 3 && fmt.Sprint(g) != "[0 1 2 3 4 5 6 7 8 9]" {
			return fmt.Errorf("gather %v", g)
		}
		a, err := Allgather(ctx, c, []int{c.Rank()})
		if err != nil {
			return err
		}
		if fmt.Sprint(a) != "[0 1 2 3 4]" {
			return fmt.Errorf("allgather %v", a)
		}
		r, err := Allreduce(ctx, c, []float64{1, float64(c.Rank())}, Sum)
		if err != nil {
			return err
		}
		if fmt.Sprint(r) != "[5 10]" {
			return fmt.Errorf("allreduce %v", r)
		}
		sc, err := Scan(ctx, c, []int{1}, Sum)
		if err != nil {
			return err
		}
		if sc[0] != c.Rank()+1 {
			return fmt.Errorf("scan %v", sc)
		}
		at, err := Alltoall(ctx, c, []int{c.Rank(), c.Rank(), c.Rank(), c.Rank(), c.Rank()})
		if err != nil {
			return err
		}
		if fmt.Sprint(at) != "[0 1 2 3 4]" {
			return fmt.Errorf("alltoall %v", at)
		}
		return nil
	})
}
