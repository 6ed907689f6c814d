// Command masterworker: rank 0 hands out tasks to whichever worker asks, then an
// empty stop message (masterworker.py: mpi4py). It needs two ranks or more.
package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

const work, stop = 1, 2

type result struct{ I, Sum int } // I = -1: a worker's first request

func task(n int) (s int) {
	for i := range n {
		s += i * i
	}
	return s
}

func main() {
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		if world.Size() < 2 {
			return errors.New("masterworker: needs at least 2 ranks")
		}
		if world.Rank() == 0 {
			results, next, workers := make([]int, 1000), 0, world.Size()-1
			for workers > 0 {
				r, st, err := mpi.RecvValue[result](ctx, world, mpi.AnySource, 0)
				mpi.Check(err)
				if r.I >= 0 {
					results[r.I] = r.Sum
				}
				if next < len(results) {
					mpi.Check(mpi.SendValue(ctx, world, st.Source, work, next))
					next++
				} else {
					mpi.Check(world.Send(ctx, st.Source, stop, nil))
					workers--
				}
			}
			for i, s := range results {
				if s != task(1000+i) {
					return fmt.Errorf("masterworker: task %d: %d, want %d", i, s, task(1000+i))
				}
			}
			fmt.Printf("masterworker: OK: %d tasks on %d workers\n", len(results), world.Size()-1)
			return nil
		}
		mpi.Check(mpi.SendValue(ctx, world, 0, 0, result{I: -1}))
		for {
			i, st, err := mpi.RecvValue[int](ctx, world, 0, mpi.AnyTag)
			mpi.Check(err)
			if st.Tag == stop {
				return nil
			}
			mpi.Check(mpi.SendValue(ctx, world, 0, 0, result{i, task(1000 + i)}))
		}
	})
}
