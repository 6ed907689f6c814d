package mpi_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

func TestSmokeRing(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
			next, prev := (c.Rank()+1)%c.Size(), (c.Rank()+c.Size()-1)%c.Size()
			got, st, err := c.Sendrecv(ctx, next, 0, []byte{byte(c.Rank())}, prev, 0)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, []byte{byte(prev)}) || st.Source != prev {
				t.Errorf("rank %d got %v from %d", c.Rank(), got, st.Source)
			}
			big := bytes.Repeat([]byte{byte(c.Rank())}, 3<<20+5)
			got, _, err = c.Sendrecv(ctx, next, 1, big, prev, 1)
			if err != nil {
				return err
			}
			if len(got) != len(big) || got[0] != byte(prev) || got[len(got)-1] != byte(prev) {
				t.Errorf("rank %d: big message wrong", c.Rank())
			}
			return nil
		})
	}
}
