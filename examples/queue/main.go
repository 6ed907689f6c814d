// Command queue: even ranks put 1000 numbers each on a pool.Queue, every rank gets
// until it ends, rank 0 checks the total (producers.py: multiprocessing).
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

func main() {
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	check(err)
	defer world.Close()
	q, err := pool.NewQueue[int](ctx, world, pool.MaxSize(100))
	check(err)
	go func() { // the producer: even ranks put, every rank closes
		for i := range 1000 * (1 - world.Rank()%2) {
			check(q.Put(ctx, world.Rank()*1000+i))
		}
		check(q.Close())
	}()
	got := []int{0, 0} // the sum and the count of the items this rank got
	for {
		item, err := q.Get(ctx)
		if err == pool.ErrQueueClosed {
			break
		}
		check(err)
		got[0], got[1] = got[0]+item, got[1]+1
	}
	all, err := collectives.Reduce(ctx, world, 0, got, collectives.Sum)
	check(err)
	if want := []int{0, 0}; world.Rank() == 0 {
		for r := 0; r < world.Size(); r += 2 {
			want[0], want[1] = want[0]+1000*1000*r+499500, want[1]+1000
		}
		if all[0] != want[0] || all[1] != want[1] {
			log.Fatalf("queue: got %d items adding up to %d, want %d adding up to %d", all[1], all[0], want[1], want[0])
		}
		fmt.Printf("queue: OK: %d items from %d producers, got by %d ranks\n", all[1], (world.Size()+1)/2, world.Size())
	}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
