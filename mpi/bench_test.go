package mpi_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/gorun-hpc/gorun/mpi"
)

// The benchmarks run two ranks in this process, each with its own TCP
// connection to a listening server on loopback, beside raw nats.go clients
// doing the same through the same kind of server, so that the ratio shows
// this layer's overhead over the bus. Run them with
//
//	go test -run '^$' -bench . -benchmem ./mpi
//
// Allocation counts include the in-process server's.

var benchSizes = []int{8, 1 << 10, 64 << 10}

func benchPair(b *testing.B) (*mpi.Comm, *mpi.Comm) {
	b.Helper()
	s := startServer(b, "bench")
	job := uuid.NewString()
	comms := make([]*mpi.Comm, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mpi.Init(context.Background(), mpi.WithJob(job, r, 2), mpi.WithNATS(s.ClientURL(), "bench"))
			if err != nil {
				b.Error(err)
				return
			}
			comms[r] = c
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Cleanup(func() { comms[0].Close(); comms[1].Close() })
	return comms[0], comms[1]
}

func BenchmarkPingPong(b *testing.B) {
	benchPingPong(b)
}

// BenchmarkPingPongTraced is BenchmarkPingPong with tracing on (gorun
// --trace): the cost of recording every call and message.
func BenchmarkPingPongTraced(b *testing.B) {
	mpi.StartTrace(1 << 16)
	defer mpi.StartTrace(0)
	benchPingPong(b)
}

func benchPingPong(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			c0, c1 := benchPair(b)
			ctx := context.Background()
			msg := make([]byte, size)
			done := make(chan error, 1)
			go func() { // the echo rank
				for {
					m, st, err := c1.Recv(ctx, 0, mpi.AnyTag)
					if err != nil || st.Tag == 1 {
						done <- err
						return
					}
					if err := c1.Send(ctx, 0, 0, m); err != nil {
						done <- err
						return
					}
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := c0.Send(ctx, 1, 0, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c0.Recv(ctx, 1, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N)/2, "us/halfRTT")
			b.StopTimer()
			c0.Send(ctx, 1, 1, nil)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

func rawPair(b *testing.B) (*nats.Conn, *nats.Conn) {
	s := startServer(b, "bench")
	var conns [2]*nats.Conn
	for i := range conns {
		nc, err := nats.Connect(s.ClientURL(), nats.Token("bench"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		conns[i] = nc
	}
	return conns[0], conns[1]
}

func BenchmarkRawNATSPingPong(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			a, c := rawPair(b)
			sa, _ := a.SubscribeSync("bench.a")
			sc, _ := c.SubscribeSync("bench.c")
			a.Flush()
			c.Flush()
			go func() {
				for {
					m, err := sc.NextMsg(time.Minute)
					if err != nil || len(m.Data) == 0 && m.Header.Get("stop") != "" {
						return
					}
					c.Publish("bench.a", m.Data)
				}
			}()
			msg := make([]byte, size)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := a.Publish("bench.c", msg); err != nil {
					b.Fatal(err)
				}
				if _, err := sa.NextMsg(time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N)/2, "us/halfRTT")
			b.StopTimer()
			sc.Unsubscribe()
		})
	}
}

var bwSizes = []int{1 << 20, 16 << 20}

// BenchmarkBandwidth: rank 0 streams messages to rank 1 in windows of 16
// Isends against 16 posted Irecvs, then waits for a one-byte reply, as
// OSU's osu_bw does. One op is one message.
func BenchmarkBandwidth(b *testing.B) {
	for _, size := range bwSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			c0, c1 := benchPair(b)
			bandwidth(b, c0, c1, size) // shm_bench_test.go
		})
	}
}

// BenchmarkRawNATSBandwidth: the same bytes published with nats.go in
// payload-sized pieces (the largest the server takes), counted by a
// subscriber that then acknowledges. Raw NATS has no flow control: the
// subscriber's pending limits are lifted so that it drops nothing.
func BenchmarkRawNATSBandwidth(b *testing.B) {
	for _, size := range bwSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			a, c := rawPair(b)
			piece := int(a.MaxPayload())
			total := int64(size) * int64(b.N)
			var got int64
			ack := make(chan struct{})
			sub, _ := c.Subscribe("bench.bw", func(m *nats.Msg) {
				got += int64(len(m.Data))
				if got == total {
					close(ack)
				}
			})
			sub.SetPendingLimits(-1, -1)
			c.Flush()
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for off := 0; off < size; off += piece {
					if err := a.Publish("bench.bw", msg[off:min(off+piece, size)]); err != nil {
						b.Fatal(err)
					}
				}
			}
			a.Flush()
			select {
			case <-ack:
			case <-time.After(time.Minute):
				b.Fatalf("received %d of %d bytes", got, total)
			}
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func bandwidth(b *testing.B, c0, c1 *mpi.Comm, size int) {
	ctx := context.Background()
	msg := make([]byte, size)
	const window = 16
	rounds := (b.N + window - 1) / window
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		reqs := make([]*mpi.Request, window)
		for range rounds {
			for i := range reqs {
				reqs[i] = c1.Irecv(0, 0)
			}
			if err := mpi.WaitAll(ctx, reqs...); err != nil {
				done <- err
				return
			}
			if err := c1.Send(ctx, 0, 1, []byte{1}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	reqs := make([]*mpi.Request, window)
	for range rounds {
		for i := range reqs {
			reqs[i] = c0.Isend(1, 0, msg)
		}
		if err := mpi.WaitAll(ctx, reqs...); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c0.Recv(ctx, 1, 1); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
