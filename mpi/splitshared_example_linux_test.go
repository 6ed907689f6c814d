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

// Four ranks on two hosts, as gorun would place them with two slots a
// host: each rank's entry names the lowest rank on its host.
func ExampleComm_Hosts() {
	hosts := []int{0, 0, 1, 1} // the in-process harness's placement
	mpitest.WorldHosts(context.Background(), hosts, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			fmt.Println(c.Hosts())
		}
		return nil
	})
	// Output: [0 0 2 2]
}
