package mpi_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// In an in-process world every rank is on one host; under gorun, each
// host's ranks get a communicator of their own.
func ExampleComm_SplitShared() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		node, err := c.SplitShared(ctx)
		if err != nil {
			return err
		}
		if c.Rank() == 2 {
			fmt.Println("rank 2 is rank", node.Rank(), "of", node.Size(), "on its host")
		}
		return nil
	})
	// Output: rank 2 is rank 2 of 3 on its host
}
