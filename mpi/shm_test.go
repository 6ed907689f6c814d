//go:build linux

package mpi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorun-hpc/gorun/internal/hostsync"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// onRings checks that every other rank of c's world takes the rings.
func onRings(c *mpi.Comm) error {
	if got, want := c.RingPeers(), c.Size()-1; got != want {
		return fmt.Errorf("rank %d: %d peers on the shared-memory rings, want %d", c.Rank(), got, want)
	}
	return nil
}

// TestConformanceShared runs the suite with every rank on one shared-memory
// segment: every frame between ranks goes through the rings.
func TestConformanceShared(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
				if err := onRings(c); err != nil {
					return err
				}
				return suite(ctx, c)
			})
		})
	}
}

// TestShmDoorbellWakes: a receiver that does not spin sleeps on its
// doorbell with no timeout worth the name (an hour), so every message of a
// ping-pong must wake it through the doorbell its sender rings; without
// the wake-up the first Recv never returns. Close, too, must wake its own
// poller (shm's Wake) to end it: without, Close waits the hour.
func TestShmDoorbellWakes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := mpitest.WorldShared(ctx, 2, func(ctx context.Context, c *mpi.Comm) error {
		if err := onRings(c); err != nil {
			return err
		}
		peer := 1 - c.Rank()
		for i := range 50 {
			if c.Rank() == i%2 {
				if err := c.Send(ctx, peer, 0, []byte{byte(i)}); err != nil {
					return err
				}
			} else if b, _, err := c.Recv(ctx, peer, 0); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			} else if b[0] != byte(i) {
				return fmt.Errorf("message %d: got %d", i, b[0])
			}
		}
		return nil
	}, mpi.WithShmPolling(0, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
}

// TestShmDrainYields: a rank about to block in Recv takes the frames from
// the rings itself for a spin, and gives its core away between looks: on a
// host with more ranks than cores (where it spins longest) the rank it
// waits for may need that core to send.
func TestShmDrainYields(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := mpitest.WorldShared(ctx, 2, func(ctx context.Context, c *mpi.Comm) error {
		if err := onRings(c); err != nil {
			return err
		}
		if c.Rank() == 1 {
			time.Sleep(50 * time.Millisecond)
			return c.Send(ctx, 0, 0, []byte("late"))
		}
		if _, _, err := c.Recv(ctx, 1, 0); err != nil {
			return err
		}
		if c.DrainYields() == 0 {
			return errors.New("rank 0 waited 50 ms in Recv, spinning, and never yielded its core")
		}
		return nil
	}, mpi.WithShmPolling(time.Second, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
}

// TestShmIdleRecvSleeps: a rank blocked in Recv on the rings (with the
// default polling: a short spin, then a sleep on its doorbell)
// uses under 5% of a core, measured from /proc/self/stat: every rank of
// the job is in this process, and all are idle.
func TestShmIdleRecvSleeps(t *testing.T) {
	idle := 10 * time.Second
	if testing.Short() {
		idle = 3 * time.Second
	}
	mpitest.RunShared(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if err := onRings(c); err != nil {
			return err
		}
		if c.Rank() == 1 {
			// Rank 0 is blocked in Recv from now on: measure, then
			// release it.
			if _, _, err := c.Recv(ctx, 0, 1); err != nil {
				return err
			}
			before, start := cpuTime(t), time.Now()
			for time.Since(start) < idle {
				time.Sleep(idle - time.Since(start))
			}
			used, wall := cpuTime(t)-before, time.Since(start)
			if share := used.Seconds() / wall.Seconds(); share > 0.05 {
				return fmt.Errorf("the job used %v of CPU in %v idle in Recv: %.1f%% of a core, want under 5%%", used, wall, 100*share)
			}
			t.Logf("idle in Recv for %v: %v of CPU", wall.Round(time.Millisecond), used)
			return c.Send(ctx, 0, 2, nil)
		}
		if err := c.Send(ctx, 1, 1, nil); err != nil {
			return err
		}
		_, _, err := c.Recv(ctx, 1, 2)
		return err
	})
}

// cpuTime is what this process has used of the CPU so far (utime+stime).
func cpuTime(t *testing.T) time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's closing parenthesis: state is the
	// first, utime the 12th, stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// TestShmHostileRing: what a rank writes in shared memory is untrusted
// input. A frame that breaks the protocol, or a ring whose indices break the
// ring's rules, is a protocol error on the receiving rank, naming the
// rank that wrote it, as a bad frame from the bus is; the receiver reads
// nothing out of bounds.
func TestShmHostileRing(t *testing.T) {
	cases := []struct {
		name        string
		spoil       func(c *mpi.Comm) error
		field, want string
	}{
		{"short frame", func(c *mpi.Comm) error { return c.RingSend(0, 0, make([]byte, 10)) }, "length", "10 bytes"},
		{"another sender", func(c *mpi.Comm) error { return c.RingSend(0, 0, mpi.PutHeader(mpi.KindEager, 0, 0, nil)) }, "src", "claims rank 0"},
		{"unknown stream", func(c *mpi.Comm) error { return c.RingSend(0, 7, mpi.PutHeader(mpi.KindEager, 1, 0, nil)) }, "stream", "stream 7"},
		{"control frame with a payload", func(c *mpi.Comm) error {
			return c.RingSend(0, 0, mpi.PutHeader(mpi.KindCTS, 1, 0, make([]byte, 8)))
		}, "length", "a kind 3 frame"},
		{"tail beyond a ring", func(c *mpi.Comm) error {
			return spoilRing(c, func(ctl, _ []byte, size uint64) { store64(ctl[0:], size+64) })
		}, "ring", "not within a ring"},
		{"length beyond the tail", func(c *mpi.Comm) error {
			return spoilRing(c, func(ctl, data []byte, size uint64) {
				store64(data, 1<<31) // sequence number 0, 2 GiB
				store64(ctl[0:], 16)
			})
		}, "ring", "claims 2147483648 bytes"},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var got error
			seen := make(chan struct{}) // rank 0's Recv returned
			err := mpitest.WorldShared(ctx, 2, func(ctx context.Context, c *mpi.Comm) error {
				if err := onRings(c); err != nil {
					return err
				}
				if c.Rank() == 1 {
					if err := k.spoil(c); err != nil {
						return err
					}
					// Nothing more from this rank (its bye) until then:
					// its writer would overwrite what spoil wrote.
					<-seen
					return nil
				}
				_, _, got = c.Recv(ctx, 1, 0)
				close(seen)
				return nil
			}, mpi.WithTimeout(20*time.Second))
			if err != nil && !errors.Is(err, mpi.ErrProtocol) {
				t.Fatal(err)
			}
			want := "the shared-memory ring from rank 1: field " + k.field
			if !errors.Is(got, mpi.ErrProtocol) || !strings.Contains(got.Error(), want) || !strings.Contains(got.Error(), k.want) {
				t.Fatalf("rank 0's Recv: %v; want a protocol error with %q and %q", got, want, k.want)
			}
		})
	}
}

// spoilRing maps c's segment on its own and lets spoil write the control
// block and data of the ring from local rank 1 to local rank 0, which has
// carried no frame yet.
func spoilRing(c *mpi.Comm, spoil func(ctl, data []byte, size uint64)) error {
	f, err := os.OpenFile(c.SegmentPath(), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	defer syscall.Munmap(mem)
	// The layout (internal/shm): a 128-byte header (local ranks at 12,
	// ring bytes at 16), a 128-byte line per rank, then the rings in
	// (sender, receiver) order, each a 256-byte control block (the tail
	// first) and its data.
	n := int(binary.LittleEndian.Uint32(mem[12:]))
	size := int(binary.LittleEndian.Uint32(mem[16:]))
	off := 128 + n*128 + 1*(n-1)*(256+size) // sender 1, receiver 0
	spoil(mem[off:off+256], mem[off+256:off+256+size], uint64(size))
	return nil
}

func store64(b []byte, v uint64) { atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[0])), v) }

// TestShmOff: WithSharedMemory(false) keeps every peer on the bus, and a
// rank that opened no segment (another host, a failed map) keeps its
// peers on the bus too, on both sides.
func TestShmOff(t *testing.T) {
	mpitest.RunShared(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		if n := c.RingPeers(); n != 0 {
			return fmt.Errorf("rank %d: %d peers on the rings with shared memory off", c.Rank(), n)
		}
		return suiteSmall(ctx, c)
	}, mpi.WithSharedMemory(false))
}

// suiteSmall passes a message round the ring, one way then the other.
func suiteSmall(ctx context.Context, c *mpi.Comm) error {
	next, prev := (c.Rank()+1)%c.Size(), (c.Rank()+c.Size()-1)%c.Size()
	got, _, err := c.Sendrecv(ctx, next, 0, []byte{byte(c.Rank())}, prev, 0)
	if err != nil {
		return err
	}
	if int(got[0]) != prev {
		return fmt.Errorf("rank %d got %d from rank %d", c.Rank(), got[0], prev)
	}
	_, _, err = c.Sendrecv(ctx, prev, 1, nil, next, 1)
	return err
}

// TestShmHosts: ranks on two hosts (two segments) and one rank that has
// none: only the ranks of one segment take the rings, on both sides, and
// the suite passes over the mix of rings and bus.
func TestShmHosts(t *testing.T) {
	hosts := []int{0, 1, 0, 1, 1, -1}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := mpitest.WorldHosts(ctx, hosts, func(ctx context.Context, c *mpi.Comm) error {
		want := 0
		for _, h := range hosts {
			if h >= 0 && h == hosts[c.Rank()] {
				want++
			}
		}
		want = max(want-1, 0)
		if got := c.RingPeers(); got != want {
			return fmt.Errorf("rank %d: %d peers on the rings, want %d", c.Rank(), got, want)
		}
		return suite(ctx, c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShmFullRingQueues: a sender that outruns the receiver's poller fills
// the ring (256 KiB) long before its eager credit runs out; what the ring
// cannot take waits in the transport's queue, in order, without blocking
// the sender, and leaves as the receiver makes room. (Without the queue
// the send fails: "ring full".)
func TestShmFullRingQueues(t *testing.T) {
	const count, size = 4000, 1 << 10 // 4 MB, sixteen rings' worth
	mpitest.RunShared(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if err := onRings(c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			msg := make([]byte, size)
			for i := range count {
				binary.LittleEndian.PutUint32(msg, uint32(i))
				if err := c.Send(ctx, 1, 0, msg); err != nil {
					return err
				}
			}
			// Only now does rank 1 start to receive.
			return c.Send(ctx, 1, 1, nil)
		}
		if _, _, err := c.Recv(ctx, 0, 1); err != nil {
			return err
		}
		for i := range count {
			b, _, err := c.Recv(ctx, 0, 0)
			if err != nil {
				return err
			}
			if got := binary.LittleEndian.Uint32(b); len(b) != size || got != uint32(i) {
				return fmt.Errorf("message %d: %d bytes, number %d", i, len(b), got)
			}
		}
		return nil
	})
}

// TestHostFlagsPostWaits: a rank's Post of call seq waits until every rank
// has arrived at call seq-1, so that none still reads its slot of seq's
// parity (the one call seq-2 used); Collect gives every rank's data, in
// rank order, once all have posted.
func TestHostFlagsPostWaits(t *testing.T) {
	const kind, args = 9, 7
	var arriving atomic.Bool // rank 1 is about to arrive at call 1
	mpitest.RunShared(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		f := hostsync.Open(c)
		if f == nil {
			return errors.New("no flags on one host's ranks")
		}
		if c.Rank() == 1 {
			time.Sleep(100 * time.Millisecond) // rank 0 is at call 2 by now
			arriving.Store(true)
		}
		me := []byte{byte(c.Rank())}
		for seq := uint32(1); seq <= 2; seq++ {
			if err := f.Post(ctx, seq, kind, args, me); err != nil {
				return err
			}
		}
		if !arriving.Load() {
			return errors.New("rank 0 posted call 2 before rank 1 arrived at call 1")
		}
		var got []byte
		same, err := f.Collect(ctx, 2, kind, args, func(_ int, d []byte) { got = append(got, d...) })
		if err != nil || !same || !bytes.Equal(got, []byte{0, 1}) {
			return fmt.Errorf("rank %d: Collect: %v, %v, data %v, want true, nil, [0 1]", c.Rank(), same, err, got)
		}
		return nil
	})
}
