// Command futures integrates √x over [0, 1] adaptively with pool.Run: a task compares Simpson's rule on an interval
// with its halves', and the body submits the halves where they differ, as results come in (futures.py: mpi4py.futures).
package main

import (
	"context"
	"fmt"
	"math"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

type interval struct{ A, B, Tol float64 }

type estimate struct {
	In            interval
	Whole, Halves float64
}

func simpson(a, b float64) float64 {
	return (b - a) / 6 * (math.Sqrt(a) + 4*math.Sqrt((a+b)/2) + math.Sqrt(b))
}

func task(ctx context.Context, in interval) (estimate, error) {
	m := (in.A + in.B) / 2
	return estimate{in, simpson(in.A, in.B), simpson(in.A, m) + simpson(m, in.B)}, nil
}

func main() { mpi.Main(run) }

func run(ctx context.Context, world *mpi.Comm) error {
	return pool.Run(ctx, world, task, func(ctx context.Context, ex *pool.Executor[interval, estimate]) error {
		pending := []*pool.Future[estimate]{ex.Submit(interval{0, 1, 1e-10})}
		total, count := 0.0, 0
		for len(pending) > 0 {
			var next []*pool.Future[estimate] // submitted as results come: the ranks stay busy
			for f, err := range ex.AsCompleted(ctx, pending...) {
				if err != nil {
					return err
				}
				e, _ := f.Wait(ctx)
				count++
				if in := e.In; math.Abs(e.Halves-e.Whole) <= 15*in.Tol {
					total += e.Halves + (e.Halves-e.Whole)/15
				} else {
					m := (in.A + in.B) / 2
					next = append(next, ex.Submit(interval{in.A, m, in.Tol / 2}), ex.Submit(interval{m, in.B, in.Tol / 2}))
				}
			}
			pending = next
		}
		if math.Abs(total-2.0/3) > 1e-9 {
			return fmt.Errorf("futures: ∫√x = %v, want 2/3", total)
		}
		fmt.Printf("futures: OK: the integral of sqrt(x) over [0, 1] = %.10f from %d intervals over %d ranks\n", total, count, world.Size())
		return nil
	})
}
