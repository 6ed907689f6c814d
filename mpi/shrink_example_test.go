package mpi_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// After a rank is lost (here cut off the in-memory network; under gorun
// --on-failure continue, a rank that died), the others agree to go on and
// shrink to a communicator of themselves.
func ExampleComm_Shrink() {
	net := mpitest.NewNet(mpitest.Faults{})
	var mu sync.Mutex
	lines := map[int]string{}
	net.World(context.Background(), 4, func(ctx context.Context, world *mpi.Comm) error {
		if world.Rank() == 2 {
			net.Cut(2) // rank 2 is lost
			return nil
		}
		survivors, err := world.Shrink(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		lines[world.Rank()] = fmt.Sprintf("world rank %d is rank %d of %d", world.Rank(), survivors.Rank(), survivors.Size())
		mu.Unlock()
		return nil
	})
	for _, r := range []int{0, 1, 3} {
		fmt.Println(lines[r])
	}
	// Output:
	// world rank 0 is rank 0 of 3
	// world rank 1 is rank 1 of 3
	// world rank 3 is rank 2 of 3
}

// Agree is a bitwise AND over the ranks that are not lost, the same on
// every one of them even if ranks are lost while it runs: here, whether
// every survivor is ready to go on.
func ExampleComm_Agree() {
	net := mpitest.NewNet(mpitest.Faults{})
	var mu sync.Mutex
	got := map[int]int{}
	net.World(context.Background(), 3, func(ctx context.Context, world *mpi.Comm) error {
		if world.Rank() == 1 {
			net.Cut(1)
			return nil
		}
		ready := 1
		v, err := world.Agree(ctx, ready)
		mu.Lock()
		got[world.Rank()] = v
		mu.Unlock()
		return err
	})
	fmt.Println(got[0], got[2])
	// Output: 1 1
}
