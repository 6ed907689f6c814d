package mpi_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
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

// BenchmarkWinShm is the same calls, and an 8-byte ping-pong round trip
// beside them, with the two ranks on one shared-memory segment
// (mpitest.WorldShared), as gorun runs the ranks of one host.
func BenchmarkWinShm(b *testing.B) {
	calls := []struct {
		name string
		call func(ctx context.Context, c *mpi.Comm, w *mpi.Win[int64]) error
	}{
		{"Get8B", func(ctx context.Context, c *mpi.Comm, w *mpi.Win[int64]) error {
			return w.Get(ctx, 1, 0, make([]int64, 1))
		}},
		{"Put8B", func(ctx context.Context, c *mpi.Comm, w *mpi.Win[int64]) error { return w.Put(ctx, 1, 0, []int64{7}) }},
		{"FetchAndOp8B", func(ctx context.Context, c *mpi.Comm, w *mpi.Win[int64]) error {
			_, err := w.FetchAndOp(ctx, 1, 0, 1, mpi.AccSum)
			return err
		}},
		{"PingPongRTT8B", func(ctx context.Context, c *mpi.Comm, w *mpi.Win[int64]) error {
			if err := c.Send(ctx, 1, 0, make([]byte, 8)); err != nil {
				return err
			}
			_, _, err := c.Recv(ctx, 1, 0)
			return err
		}},
	}
	for _, bc := range calls {
		b.Run(bc.name, func(b *testing.B) {
			var us float64
			err := mpitest.WorldShared(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
				w, err := mpi.NewWin[int64](ctx, c, 1)
				if err != nil {
					return err
				}
				if c.Rank() == 0 {
					start := time.Now()
					for range b.N {
						if err := bc.call(ctx, c, w); err != nil {
							return err
						}
					}
					us = float64(time.Since(start).Microseconds()) / float64(b.N)
					if err := c.Send(ctx, 1, 1, nil); err != nil { // the echo's end
						return err
					}
				} else {
					for { // echo the ping-pong, until the end
						m, st, err := c.Recv(ctx, 0, mpi.AnyTag)
						if err != nil {
							return err
						}
						if st.Tag == 1 {
							break
						}
						if err := c.Send(ctx, 0, 0, m); err != nil {
							return err
						}
					}
				}
				return w.Free(ctx)
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(us, "us/call")
		})
	}
}
