package pool_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// Futures, as mpi4py.futures' MPIPoolExecutor: the body, on rank 0,
// submits tasks and takes the results as they come (AsCompleted), and
// submits more from them; every rank runs tasks.
func ExampleRun() {
	square := func(ctx context.Context, x int) (int, error) { return x * x, nil }
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		return pool.Run(ctx, c, square, func(ctx context.Context, ex *pool.Executor[int, int]) error {
			var fs []*pool.Future[int]
			for x := 1; x <= 5; x++ {
				fs = append(fs, ex.Submit(x))
			}
			var squares []int
			for f, err := range ex.AsCompleted(ctx, fs...) { // in the order they finish
				if err != nil {
					return err
				}
				sq, _ := f.Wait(ctx) // done: Wait returns at once
				squares = append(squares, sq)
			}
			slices.Sort(squares)
			fmt.Println(squares)
			// A task made from a result: the square of the largest square.
			big, err := ex.Submit(squares[len(squares)-1]).Wait(ctx)
			fmt.Println(big)
			return err
		})
	})
	// Output:
	// [1 4 9 16 25]
	// 625
}

// A task that no rank has taken yet can be withdrawn; Done is closed when a
// task has finished or was canceled.
func ExampleFuture_Cancel() {
	wait := make(chan struct{})
	slow := func(ctx context.Context, x int) (int, error) {
		if x == 0 {
			<-wait // the only rank is busy with task 0
		}
		return x, nil
	}
	mpitest.World(context.Background(), 1, func(ctx context.Context, c *mpi.Comm) error {
		return pool.Run(ctx, c, slow, func(ctx context.Context, ex *pool.Executor[int, int]) error {
			first, second := ex.Submit(0), ex.Submit(1)
			fmt.Println("canceled:", second.Cancel())
			<-second.Done()
			_, err := second.Wait(ctx)
			fmt.Println(err)
			close(wait)
			x, err := first.Wait(ctx)
			fmt.Println("task", first.Index(), "gave", x, err)
			return nil
		})
	})
	// Output:
	// canceled: true
	// pool: task 1: context canceled
	// task 0 gave 0 <nil>
}

// AsCompleted yields futures as they finish, whatever order they were
// submitted in; Submit never blocks, and Wait gives a finished task's
// result at once.
func ExampleExecutor_AsCompleted() {
	nap := func(ctx context.Context, ms int) (int, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return ms, nil
	}
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		return pool.Run(ctx, c, nap, func(ctx context.Context, ex *pool.Executor[int, int]) error {
			slow, fast := ex.Submit(1000), ex.Submit(1)
			for f, err := range ex.AsCompleted(ctx, slow, fast) {
				if err != nil {
					return err
				}
				ms, _ := f.Wait(ctx)
				fmt.Printf("task %d: %d ms\n", f.Index(), ms)
			}
			return nil
		})
	})
	// Output:
	// task 1: 1 ms
	// task 0: 1000 ms
}

// A rank lost in the middle of a Map (here cut off the in-memory network;
// under gorun --on-failure continue, a rank that died) hands its tasks to
// the others; Retries bounds how many ranks one task may take down.
func ExampleRetries() {
	net := mpitest.NewNet(mpitest.Faults{})
	net.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = []int{1, 2, 3, 4, 5, 6}
		}
		out, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			if c.Rank() == 2 {
				net.Cut(2) // rank 2 is lost with the task it was handed
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return x * x, nil
		}, pool.Retries(2))
		if c.Rank() == 0 {
			fmt.Println(out, err)
		}
		return nil
	})
	// Output: [1 4 9 16 25 36] <nil>
}
