//go:build linux

package mpi_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gorun-hpc/gorun/internal/shm"
	"github.com/gorun-hpc/gorun/mpi"
)

// pingProxy forwards TCP connections to a NATS server and counts the PINGs
// the clients send (every flush is one).
type pingProxy struct {
	ln    net.Listener
	pings atomic.Int64
}

func newPingProxy(t *testing.T, target string) *pingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pingProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(c, s); c.Close() }()
			go func() { p.count(c, s); s.Close() }()
		}
	}()
	return p
}

// count copies what the client sends, counting the lines "PING".
func (p *pingProxy) count(from io.Reader, to io.Writer) {
	var tail []byte // a line cut by a read
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			tail = append(tail, buf[:n]...)
			p.pings.Add(int64(bytes.Count(tail, []byte("PING\r\n"))))
			if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
				tail = append(tail[:0], tail[i+1:]...)
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *pingProxy) url() string { return "nats://" + p.ln.Addr().String() }

// TestCloseFlushesOnlyBusFrames: Close makes a round trip to the server
// (a flush) only when the rank published frames on the bus: two ranks that
// talked through the rings close without one (it cost each rank's Close
// milliseconds while other ranks started), two that talked through the bus
// flush, so that the server has their last frames before they disconnect.
func TestCloseFlushesOnlyBusFrames(t *testing.T) {
	for _, onShm := range []bool{true, false} {
		name := map[bool]string{true: "rings", false: "bus"}[onShm]
		t.Run(name, func(t *testing.T) {
			s := startServer(t, "flush")
			proxy := newPingProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
			job := uuid.NewString()
			var path string
			if onShm {
				p, err := shm.NewPath("")
				if err != nil {
					t.Fatal(err)
				}
				if err := shm.Create(p, 2); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { shm.Remove(p) })
				path = p
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			comms := make([]*mpi.Comm, 2)
			var wg sync.WaitGroup
			for r := range 2 {
				wg.Go(func() {
					opts := []mpi.Option{mpi.WithJob(job, r, 2), mpi.WithNATS(proxy.url(), "flush")}
					if onShm {
						opts = append(opts, mpi.WithSegment(path, r))
					} else {
						opts = append(opts, mpi.WithSharedMemory(false))
					}
					c, err := mpi.Init(ctx, opts...)
					if err != nil {
						t.Error(err)
						return
					}
					comms[r] = c
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			if got, want := comms[0].RingPeers(), map[bool]int{true: 1, false: 0}[onShm]; got != want {
				t.Fatalf("%d peers on the rings, want %d", got, want)
			}
			for r, c := range comms {
				wg.Go(func() {
					got, _, err := c.Sendrecv(ctx, 1-r, 0, []byte{byte(r)}, 1-r, 0)
					if err != nil || len(got) != 1 || int(got[0]) != 1-r {
						t.Errorf("rank %d: got %v, %v", r, got, err)
					}
				})
			}
			wg.Wait()
			before := proxy.pings.Load()
			for _, c := range comms {
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// What the clients sent has passed the proxy once the server
			// saw them go.
			deadline := time.Now().Add(10 * time.Second)
			for s.NumClients() > 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			flushes := proxy.pings.Load() - before
			if onShm && flushes != 0 {
				t.Errorf("the ranks on the rings sent %d PINGs in Close, want none", flushes)
			}
			if !onShm && flushes < 2 {
				t.Errorf("the ranks on the bus sent %d PINGs in Close, want one each", flushes)
			}
		})
	}
}
