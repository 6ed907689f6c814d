//go:build linux

package mpitest_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// A job whose ranks share one shared-memory segment, as gorun's ranks of
// one host do: the ring's messages never touch the server.
func ExampleWorldShared() {
	err := mpitest.WorldShared(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		next, prev := (c.Rank()+1)%c.Size(), (c.Rank()+c.Size()-1)%c.Size()
		got, _, err := c.Sendrecv(ctx, next, 0, []byte{byte(c.Rank())}, prev, 0)
		if err == nil && c.Rank() == 0 {
			fmt.Println("rank 0 got", got[0], "from rank", prev)
		}
		return err
	})
	fmt.Println("error:", err)
	// Output:
	// rank 0 got 2 from rank 2
	// error: <nil>
}

// WithSharedMemory(false) sends every frame through the server, even
// between ranks that share a segment.
func ExampleWorldShared_off() {
	err := mpitest.WorldShared(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			return c.Send(ctx, 1, 0, []byte("over the bus"))
		}
		b, _, err := c.Recv(ctx, 0, 0)
		fmt.Println(string(b))
		return err
	}, mpi.WithSharedMemory(false))
	fmt.Println("error:", err)
	// Output:
	// over the bus
	// error: <nil>
}
