// Command queueprog is run by pool's multi-process tests under the real
// gorun: every rank puts items from two goroutines and gets from two more,
// on a bounded queue owned by the last rank; rank 0 checks that every item
// came out once, and each producer's in order, and prints an OK line.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

const perRank, perProducer = 2, 500

type item struct{ Producer, Seq int }

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "queueprog:", err)
		os.Exit(1)
	}
	err = run(ctx, world)
	world.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "queueprog: rank %d: %v\n", world.Rank(), err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *mpi.Comm) error {
	q, err := pool.NewQueue[item](ctx, c, pool.MaxSize(8), pool.Owner(c.Size()-1))
	if err != nil {
		return err
	}
	errs := make(chan error, 2*perRank)
	var producers, consumers sync.WaitGroup
	for g := range perRank {
		producers.Go(func() {
			for s := range perProducer {
				if err := q.Put(ctx, item{c.Rank()*perRank + g, s}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	got := make([][]item, perRank)
	for g := range perRank {
		consumers.Go(func() {
			for {
				it, err := q.Get(ctx)
				if err == pool.ErrQueueClosed {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				got[g] = append(got[g], it)
			}
		})
	}
	producers.Wait()
	if err := q.Close(); err != nil {
		return err
	}
	consumers.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	all, err := collectives.Gather(ctx, c, 0, got)
	if err != nil || c.Rank() != 0 {
		return err
	}
	seen := map[item]bool{}
	for ci, seq := range all {
		last := map[int]int{}
		for _, it := range seq {
			if seen[it] {
				return fmt.Errorf("item %+v got twice", it)
			}
			seen[it] = true
			if prev, ok := last[it.Producer]; ok && it.Seq <= prev {
				return fmt.Errorf("consumer %d got %+v after item %d of that producer", ci, it, prev)
			}
			last[it.Producer] = it.Seq
		}
	}
	if want := c.Size() * perRank * perProducer; len(seen) != want {
		return fmt.Errorf("%d items got, want %d", len(seen), want)
	}
	fmt.Printf("queueprog: OK: %d ranks, %d items, every item once, FIFO per producer\n", c.Size(), len(seen))
	return nil
}
