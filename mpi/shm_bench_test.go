//go:build linux

package mpi_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gorun-hpc/gorun/internal/shm"
	"github.com/gorun-hpc/gorun/mpi"
)

// BenchmarkPaths prints, in one run, the half round trip of a ping-pong
// between two ranks of this process over raw loopback TCP (the floor of a
// socket), over the bus (a nats-server on loopback) and over the
// shared-memory rings (spinning briefly before it sleeps, as on a host with
// a core per rank, and sleeping at once, as on a busier one), at 8 B, 1 KiB
// and 64 KiB, and the bandwidth of 1 MiB
// messages over the bus and the rings:
//
//	go test -run '^$' -bench Paths -benchmem ./mpi
func BenchmarkPaths(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("pingpong/"+sizeName(size)+"/tcp", func(b *testing.B) { tcpPingPong(b, size) })
		for _, path := range []string{"bus", "shm", "shm-sleep"} {
			b.Run("pingpong/"+sizeName(size)+"/"+path, func(b *testing.B) {
				var opts []mpi.Option
				if path == "shm-sleep" { // never spin: sleep on the doorbell at once
					opts = append(opts, mpi.WithShmPolling(0, 100*time.Millisecond))
				}
				c0, c1 := benchPairPath(b, path != "bus", opts...)
				pingPong(b, c0, c1, size)
			})
		}
	}
	for _, path := range []string{"bus", "shm"} {
		b.Run("bandwidth/1MiB/"+path, func(b *testing.B) {
			c0, c1 := benchPairPath(b, path == "shm")
			bandwidth(b, c0, c1, 1<<20)
		})
	}
}

// benchPairPath is benchPair, with both ranks on one shared-memory segment
// when shm is set.
func benchPairPath(b *testing.B, onShm bool, extra ...mpi.Option) (*mpi.Comm, *mpi.Comm) {
	b.Helper()
	s := startServer(b, "bench")
	job := uuid.NewString()
	var path string
	if onShm {
		p, err := shm.NewPath("")
		if err != nil {
			b.Fatal(err)
		}
		if err := shm.Create(p, 2); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { shm.Remove(p) })
		path = p
	}
	comms := make([]*mpi.Comm, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := []mpi.Option{mpi.WithJob(job, r, 2), mpi.WithNATS(s.ClientURL(), "bench")}
			if onShm {
				opts = append(opts, mpi.WithSegment(path, r))
			}
			opts = append(opts, extra...)
			c, err := mpi.Init(context.Background(), opts...)
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
	if onShm && (comms[0].RingPeers() != 1 || comms[1].RingPeers() != 1) {
		b.Fatal("the ranks are not on the rings")
	}
	b.Cleanup(func() { comms[0].Close(); comms[1].Close() })
	return comms[0], comms[1]
}

func pingPong(b *testing.B, c0, c1 *mpi.Comm, size int) {
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
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/2/1e3, "us/halfRTT")
	b.StopTimer()
	c0.Send(ctx, 1, 1, nil)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// tcpPingPong is the ping-pong over a raw loopback TCP connection: a
// goroutine echoes what it reads.
func tcpPingPong(b *testing.B, size int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/2/1e3, "us/halfRTT")
}
