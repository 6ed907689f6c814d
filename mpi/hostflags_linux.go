//go:build linux

package mpi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
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
// looks at its ctx, and whether the wait can still end (broken).
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
	return &hostFlags{c: c, ch: ch, locals: locals, n: uint32(c.Size()), spin: t.spin}
}

// hostFlags are a communicator's flags: a call's word is its number and
// kind; the count reaches n*seq once every rank has arrived at call seq.
type hostFlags struct {
	c      *Comm
	ch     *shm.Channel
	locals []int // by rank of the communicator: its local rank, whose cell it writes
	n      uint32
	spin   time.Duration
}

func word(seq uint32, kind byte) uint64 { return uint64(seq)<<8 | uint64(kind) }

func (f *hostFlags) Arrive(seq uint32, kind byte) { f.ch.Arrive(word(seq, kind), f.n*seq) }

func (f *hostFlags) SlotData() int { return shm.SlotData }

// wait waits until every rank has arrived at call seq, or ctx ends, or the
// wait can never end (broken).
func (f *hostFlags) wait(ctx context.Context, seq uint32) error {
	var why error
	parked := false
	err := f.ch.Wait(f.n*seq, f.spin, hostFlagsTick, func() bool {
		if !parked { // asked first as the wait is about to sleep
			parked = true
			blocked.Parking(ctx)
		}
		if why = ctx.Err(); why == nil {
			why = f.broken()
		}
		return why != nil
	})
	if errors.Is(err, shm.ErrStopped) {
		return why
	}
	return err
}

// broken is why no wait on c's flags can end any more, or nil: c is
// closed, the world failed (aborted, its connection lost), or a rank of c
// is gone (closed its world, or died), as a receive from it would fail.
func (f *hostFlags) broken() error {
	c := f.c
	if err := c.check(); err != nil {
		return err
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	for r := range c.Size() {
		if w := c.worldRank(r); e.peers[w].gone {
			return &RankError{Rank: r, Op: "collective", Err: e.lostErr(w)}
		}
	}
	return nil
}

// Post: a rank reads the slots of call seq-2 before it arrives at call
// seq-1; once all have arrived there, this rank's slot of seq's parity is
// free. (Today a rank can only have finished call seq-1 once every rank
// entered it, as each collective waits for all, on the flags or in its
// agreement, so the wait returns at once; it keeps Post safe for a call
// that a rank could finish alone, which none is today.)
func (f *hostFlags) Post(ctx context.Context, seq uint32, kind byte, args uint64, data []byte) error {
	if seq > 1 {
		if err := f.wait(ctx, seq-1); err != nil {
			return err
		}
	}
	if !f.ch.Put(seq, kind, args, data) {
		return fmt.Errorf("mpi: %d bytes posted in a slot of %d", len(data), shm.SlotData)
	}
	f.ch.Arrive(word(seq, kind), f.n*seq)
	return nil
}

func (f *hostFlags) Collect(ctx context.Context, seq uint32, kind byte, args uint64, each func(rank int, data []byte)) (bool, error) {
	if err := f.wait(ctx, seq); err != nil {
		return false, err
	}
	for _, l := range f.locals {
		if _, ok := f.ch.Slot(seq, kind, args, l); !ok {
			return false, nil
		}
	}
	for r, l := range f.locals {
		d, _ := f.ch.Slot(seq, kind, args, l)
		each(r, d)
	}
	return true, nil
}

// Wait: once the count says every rank came to call seq, each rank's cell
// holds that call's word, or a later call's (a rank that has gone past
// seq: it could only once every rank had come to seq, as the others'
// calls did).
func (f *hostFlags) Wait(ctx context.Context, seq uint32, kind byte) (bool, error) {
	if err := f.wait(ctx, seq); err != nil {
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
