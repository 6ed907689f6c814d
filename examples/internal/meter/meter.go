// Package meter measures the latency and bandwidth between two ranks, for
// examples/pingpong and examples/pairs: the same ping-pong and windowed
// stream, checked as they go, so that both report the same figures.
package meter

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
)

// The tags a Meter's messages use.
const (
	tagPing = 1
	tagBw   = 2
	tagAck  = 3
)

// Meter measures one size between this rank and peer; first is the lower
// rank of the pair, which pings, sends the bandwidth windows, and times.
type Meter struct {
	C     *mpi.Comm
	Peer  int
	First bool
	Size  int
	Check bool // check every byte received, not only the lengths
}

// Latency runs warmup+iters round trips and returns the first rank's half
// round-trip time (zero on the other), and the messages received.
func (m Meter) Latency(ctx context.Context, warmup, iters int) (time.Duration, int64, error) {
	ping, pong := Pattern(m.Size, 0), Pattern(m.Size, 1)
	var start time.Time
	for i := range warmup + iters {
		if i == warmup {
			start = time.Now()
		}
		if m.First {
			if err := m.C.Send(ctx, m.Peer, tagPing, ping); err != nil {
				return 0, 0, err
			}
			if err := m.recv(ctx, tagPing, pong); err != nil {
				return 0, 0, err
			}
		} else {
			if err := m.recv(ctx, tagPing, ping); err != nil {
				return 0, 0, err
			}
			if err := m.C.Send(ctx, m.Peer, tagPing, pong); err != nil {
				return 0, 0, err
			}
		}
	}
	if !m.First {
		return 0, int64(warmup + iters), nil
	}
	return time.Since(start) / time.Duration(2*iters), int64(warmup + iters), nil
}

// Bandwidth runs warmup+iters windows of window messages from the first
// rank to the other, each window acknowledged, and returns the first rank's
// bytes per second (zero on the other) and the messages received.
func (m Meter) Bandwidth(ctx context.Context, window, warmup, iters int) (float64, int64, error) {
	data := Pattern(m.Size, 2)
	reqs := make([]*mpi.Request, window)
	var start time.Time
	var received int64
	for i := range warmup + iters {
		if i == warmup {
			start = time.Now()
		}
		if m.First {
			for j := range reqs {
				reqs[j] = m.C.Isend(m.Peer, tagBw, data)
			}
			if err := mpi.WaitAll(ctx, reqs...); err != nil {
				return 0, 0, err
			}
			if err := m.recvAck(ctx); err != nil {
				return 0, 0, err
			}
			received++
			continue
		}
		for j := range reqs {
			reqs[j] = m.C.Irecv(m.Peer, tagBw)
		}
		if err := mpi.WaitAll(ctx, reqs...); err != nil {
			return 0, 0, err
		}
		for _, r := range reqs {
			if err := m.verify(r.Data(), data); err != nil {
				return 0, 0, err
			}
		}
		received += int64(window)
		if err := m.C.Send(ctx, m.Peer, tagAck, []byte{1}); err != nil {
			return 0, 0, err
		}
	}
	if !m.First {
		return 0, received, nil
	}
	return float64(m.Size*window*iters) / time.Since(start).Seconds(), received, nil
}

// recv receives one message from the peer and checks it against want.
func (m Meter) recv(ctx context.Context, tag int, want []byte) error {
	got, _, err := m.C.Recv(ctx, m.Peer, tag)
	if err != nil {
		return err
	}
	return m.verify(got, want)
}

// recvAck receives the other rank's acknowledgement of a window.
func (m Meter) recvAck(ctx context.Context) error {
	got, _, err := m.C.Recv(ctx, m.Peer, tagAck)
	if err != nil {
		return err
	}
	if len(got) != 1 || got[0] != 1 {
		return fmt.Errorf("a bad acknowledgement from rank %d: %v", m.Peer, got)
	}
	return nil
}

// verify checks a received message: its length always, its bytes when
// checking is on.
func (m Meter) verify(got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("received %d bytes from rank %d, want %d", len(got), m.Peer, len(want))
	}
	if m.Check && !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		return fmt.Errorf("message of %d bytes from rank %d differs first at byte %d: %#x, want %#x",
			len(got), m.Peer, i, got[i], want[i])
	}
	return nil
}

// Pattern returns size pseudo-random bytes, the same for the same size and
// stream on every rank, and different for different streams, so a message
// with a chunk lost, repeated or misplaced does not pass the check.
func Pattern(size, stream int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(size))
	binary.LittleEndian.PutUint64(seed[8:], uint64(stream))
	b := make([]byte, size)
	rand.NewChaCha8(seed).Read(b)
	return b
}
