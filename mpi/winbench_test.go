package mpi_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
)

// The window benchmarks: 8-byte Get, Put and FetchAndOp by rank 0 on rank
// 1's window, two ranks on one listening server as BenchmarkPingPong, whose
// 8 B half round trip they compare with (each call is one round trip:
// request and reply, through rank 1's window goroutine; rank 1 calls
// nothing meanwhile).
//
//	go test -run '^$' -bench 'Win|PingPong/8B' ./mpi

func benchWin(b *testing.B, call func(ctx context.Context, w *mpi.Win[int64]) error) {
	c0, c1 := benchPair(b)
	ctx := context.Background()
	ws := make([]*mpi.Win[int64], 2)
	var wg sync.WaitGroup
	for r, c := range []*mpi.Comm{c0, c1} {
		wg.Go(func() {
			w, err := mpi.NewWin[int64](ctx, c, 1)
			if err != nil {
				b.Error(err)
			}
			ws[r] = w
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := call(ctx, ws[0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "us/call")
	b.StopTimer()
	for _, w := range ws {
		wg.Go(func() {
			if err := w.Free(ctx); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

func BenchmarkWinGet8B(b *testing.B) {
	buf := make([]int64, 1)
	benchWin(b, func(ctx context.Context, w *mpi.Win[int64]) error { return w.Get(ctx, 1, 0, buf) })
}

func BenchmarkWinPut8B(b *testing.B) {
	data := []int64{7}
	benchWin(b, func(ctx context.Context, w *mpi.Win[int64]) error { return w.Put(ctx, 1, 0, data) })
}

func BenchmarkWinFetchAndOp8B(b *testing.B) {
	benchWin(b, func(ctx context.Context, w *mpi.Win[int64]) error {
		_, err := w.FetchAndOp(ctx, 1, 0, 1, mpi.AccSum)
		return err
	})
}
