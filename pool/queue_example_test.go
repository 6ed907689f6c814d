package pool_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// Producers and consumers: ranks 0 and 1 put numbers, ranks 2 and 3 get
// them until the queue ends (every rank closed it and it is empty).
func ExampleQueue() {
	mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		q, err := pool.NewQueue[int](ctx, c)
		if err != nil {
			return err
		}
		if c.Rank() < 2 {
			for i := 1; i <= 50; i++ {
				if err := q.Put(ctx, i); err != nil {
					return err
				}
			}
		}
		q.Close() // this rank puts no more
		sum := 0
		for c.Rank() >= 2 {
			x, err := q.Get(ctx)
			if err == pool.ErrQueueClosed {
				break
			}
			if err != nil {
				return err
			}
			sum += x
		}
		total, err := collectives.ReduceValue(ctx, c, 0, sum, collectives.Sum)
		if c.Rank() == 0 {
			fmt.Println("consumers got", total)
		}
		return err
	})
	// Output: consumers got 2550
}

// A bounded queue on rank 1: Put blocks while it holds 2 items. One
// producer's items come out in the order it put them.
func ExampleMaxSize() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		q, err := pool.NewQueue[string](ctx, c, pool.MaxSize(2), pool.Owner(1))
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			for _, w := range []string{"one", "two", "three", "four"} {
				if err := q.Put(ctx, w); err != nil {
					return err
				}
			}
		}
		q.Close()
		for c.Rank() == 1 {
			w, err := q.Get(ctx)
			if err == pool.ErrQueueClosed {
				break
			}
			if err != nil {
				return err
			}
			fmt.Println(w)
		}
		return nil
	})
	// Output:
	// one
	// two
	// three
	// four
}

// A JoinableQueue: rank 0 puts the work and waits with Join until every
// item has been marked done, by whichever rank got it.
func ExampleQueue_Join() {
	mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
		q, err := pool.NewQueue[int](ctx, c, pool.Joinable())
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			for i := range 10 {
				if err := q.Put(ctx, i); err != nil {
					return err
				}
			}
			q.Close()
			if err := q.Join(ctx); err != nil {
				return err
			}
			fmt.Println("all 10 done")
			return nil
		}
		q.Close()
		for {
			if _, err := q.Get(ctx); err == pool.ErrQueueClosed {
				return nil
			} else if err != nil {
				return err
			}
			if err := q.TaskDone(ctx); err != nil {
				return err
			}
		}
	})
	// Output: all 10 done
}
