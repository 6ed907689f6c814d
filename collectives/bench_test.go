package collectives

import (
	"context"
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// Benchmarks with goroutine ranks on an in-process server: they measure
// the collectives' own overhead more than a deployment's speed, which
// bench/collectives measures through real processes under gorun.

func benchWorld(b *testing.B, n int, call func(ctx context.Context, c *mpi.Comm) error) {
	mpitest.Run(b, n, func(ctx context.Context, c *mpi.Comm) error {
		if err := Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			b.ResetTimer()
		}
		for range b.N {
			if err := call(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
}

func BenchmarkGoroutinesBarrier(b *testing.B) {
	for _, n := range []int{2, 8} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			benchWorld(b, n, func(ctx context.Context, c *mpi.Comm) error { return Barrier(ctx, c) })
		})
	}
}

func BenchmarkGoroutinesAllreduce(b *testing.B) {
	for _, count := range []int{1, 1000, 100_000} {
		b.Run(fmt.Sprintf("n=8/count=%d", count), func(b *testing.B) {
			xs := make([]float64, count)
			b.SetBytes(int64(8 * count))
			benchWorld(b, 8, func(ctx context.Context, c *mpi.Comm) error {
				_, err := Allreduce(ctx, c, xs, Sum)
				return err
			})
		})
	}
}

func BenchmarkGoroutinesBcast(b *testing.B) {
	for _, size := range []int{8, 1 << 20} {
		b.Run(fmt.Sprintf("n=8/bytes=%d", size), func(b *testing.B) {
			data := make([]byte, size)
			b.SetBytes(int64(size))
			benchWorld(b, 8, func(ctx context.Context, c *mpi.Comm) error {
				_, err := Bcast(ctx, c, 0, data)
				return err
			})
		})
	}
}
