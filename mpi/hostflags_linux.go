//go:build linux

package mpi

import (
	"context"
	"errors"
	"time"

	"github.com/gorun-hpc/gorun/internal/hostsync"
	"github.com/gorun-hpc/gorun/internal/shm"
)

func init() {
	hostsync.Open = func(v any) hostsync.Flags {
		if c, ok := v.(*Comm); ok {
			return c.hostFlags()
		}
		return nil
	}
}

// hostFlagsTick is how often a rank asleep on its communicator's flags
// looks at its ctx.
const hostFlagsTick = 20 * time.Millisecond

// hostFlags returns c's channel in the segment of this rank's host (see
// hostsync), where every rank of c announced this rank's segment at
// start-up: every rank reads that from the same table, so they answer
// alike (the channel itself is claimed by c's id, the same everywhere).
func (c *Comm) hostFlags() hostsync.Flags {
	e := c.e
	t, ok := e.tr.(*shmTransport)
	if !ok || c.Size() < 2 || t.routes.Load() == nil {
		return nil
	}
	e.mu.Lock()
	own := e.shmOwn.seg
	locals := make([]int, c.Size())
	for r := range locals {
		h := e.peerInfo[c.worldRank(r)]
		if own == 0 || h.shm.seg != own {
			e.mu.Unlock()
			return nil
		}
		locals[r] = int(h.shm.local)
	}
	e.mu.Unlock()
	t.rmu.Lock() // the endpoint is not closing meanwhile
	ch, ok := t.ep.Channel(c.id + 1)
	t.rmu.Unlock()
	if !ok {
		return nil
	}
	return &hostFlags{ch: ch, locals: locals, n: uint32(c.Size()), spin: t.spin}
}

// hostFlags are a communicator's flags: a call's word is its number and
// kind; the count reaches n*seq once every rank has arrived at call seq.
type hostFlags struct {
	ch     *shm.Channel
	locals []int // by rank of the communicator: its local rank, whose cell it writes
	n      uint32
	spin   time.Duration
}

func word(seq uint32, kind byte) uint64 { return uint64(seq)<<8 | uint64(kind) }

func (f *hostFlags) Arrive(seq uint32, kind byte) { f.ch.Arrive(word(seq, kind), f.n*seq) }

// Wait: once the count says every rank came to call seq, each rank's cell
// holds that call's word, or a later call's (a rank that has gone past
// seq: it could only once every rank had come to seq, as the others'
// calls did).
func (f *hostFlags) Wait(ctx context.Context, seq uint32, kind byte) (bool, error) {
	err := f.ch.Wait(f.n*seq, f.spin, hostFlagsTick, func() bool { return ctx.Err() != nil })
	if errors.Is(err, shm.ErrStopped) {
		return false, ctx.Err()
	}
	if err != nil {
		return false, err
	}
	want := word(seq, kind)
	for _, l := range f.locals {
		w := f.ch.Cell(l)
		if later := int32(uint32(w>>8)-seq) > 0; w != want && !later {
			return false, nil
		}
	}
	return true, nil
}
