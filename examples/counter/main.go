// Command counter: every rank adds to a shared counter (a shared.Value) and
// to a histogram in a shared Array, under no lock but their atomic Add;
// then, under a shared.Mutex, appends its rank to a log (a read-modify-write
// of several calls); rank 0 checks the totals and exits non-zero if one is
// wrong (counter.py: the same with multiprocessing's Value, Array and Lock).
//
//	gorun -n 4 ./examples/counter
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/shared"
)

const samples, bins = 1000, 16

func main() {
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	check(err)
	defer world.Close()
	me, size := world.Rank(), world.Size()

	count, err := shared.NewValue[int64](ctx, world) // Value('q', 0)
	check(err)
	hist, err := shared.NewArray[int64](ctx, world, bins) // Array('q', bins)
	check(err)
	lock, err := shared.NewMutex(ctx, world) // Lock()
	check(err)
	order, err := shared.NewArray[int32](ctx, world, size+1) // [0]: how many ranks logged; then their ranks
	check(err)

	for i := range samples {
		_, err := count.Add(ctx, 1)
		check(err)
		_, err = hist.Add(ctx, (i*31+me*7)%bins, 1)
		check(err)
	}
	check(lock.Lock(ctx))
	n, err := order.At(ctx, 0)
	check(err)
	check(order.Set(ctx, int(n)+1, int32(me)))
	check(order.Set(ctx, 0, n+1))
	check(lock.Unlock(ctx))

	check(collectives.Barrier(ctx, world))
	if me == 0 {
		total, err := count.Load(ctx)
		check(err)
		h, err := hist.ReadRange(ctx, 0, bins)
		check(err)
		logged, err := order.ReadRange(ctx, 0, size+1)
		check(err)
		want := make([]int64, bins)
		for r := range size {
			for i := range samples {
				want[(i*31+r*7)%bins]++
			}
		}
		ranks := slices.Sorted(slices.Values(logged[1:]))
		switch {
		case total != int64(size*samples):
			fail("counter %d, want %d", total, size*samples)
		case !slices.Equal(h, want):
			fail("histogram %v, want %v", h, want)
		case int(logged[0]) != size || !slices.Equal(ranks, seq(size)):
			fail("the log under the lock holds %v, want every rank once", logged)
		}
		fmt.Printf("counter: OK: %d ranks, counter %d, histogram of %d bins sums to %d, every rank logged once under the lock\n",
			size, total, bins, sum(h))
	}
	check(collectives.Barrier(ctx, world))
	check(order.Free(ctx))
	check(lock.Free(ctx))
	check(hist.Free(ctx))
	check(count.Free(ctx))
}

func seq(n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(i)
	}
	return s
}

func sum(xs []int64) (s int64) {
	for _, x := range xs {
		s += x
	}
	return s
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "counter: wrong: "+format+"\n", a...)
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		log.Fatal("counter: ", err)
	}
}
