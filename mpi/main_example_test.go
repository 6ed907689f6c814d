package mpi_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// A program's whole main: Init, the work, Close, and an error that ends
// the rank (and, under gorun, the job, naming this rank).
func ExampleMain() {
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		fmt.Println("rank", world.Rank(), "of", world.Size())
		return nil
	})
	// Output: rank 0 of 1
}

// Must takes a call's result, or stops the rank with its error.
func ExampleMust() {
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		sub := mpi.Must(world.Split(ctx, 0, world.Rank()))
		fmt.Println("a communicator of", sub.Size())
		return nil
	})
	// Output: a communicator of 1
}

// Check is Must for a call that returns only an error.
func ExampleCheck() {
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		mpi.Check(world.Send(ctx, 0, 7, []byte("to myself")))
		data, st, err := world.Recv(ctx, 0, 7)
		mpi.Check(err)
		fmt.Printf("%s (tag %d)\n", data, st.Tag)
		return nil
	})
	// Output: to myself (tag 7)
}
