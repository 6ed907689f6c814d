//go:build linux

package mpi

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

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
	spin   shm.Spin
}

func word(seq uint32, kind byte) uint64 { return uint64(seq)<<8 | uint64(kind) }

func (f *hostFlags) Arrive(seq uint32, kind byte) { f.ch.Arrive(word(seq, kind), f.n*seq) }

func (f *hostFlags) SlotData() int { return shm.SlotData }

// wait waits until every rank has arrived at call seq, or ctx ends, or the
// wait can never end (broken). The count says so once it reaches n*seq,
// unless a rank gave a call up (its ctx ended) and went on to later ones
// before every rank came to it: then the count runs ahead of the calls,
// and the cells say which ranks have come to seq (a rank's cell only ever
// moves on). A wait for the count to run ahead ends only on a tick or a
// spin: the arrival that reaches n*seq wakes the sleepers, and that one
// has passed.
func (f *hostFlags) wait(ctx context.Context, seq uint32) error {
	var why error
	parked := false
	for target := f.n * seq; ; target++ {
		err := f.ch.Wait(target, f.spin, hostFlagsTick, func() bool {
			if !parked { // asked first as the wait is about to sleep
				parked = true
				blocked.Parking(ctx)
			}
			if why = ctx.Err(); why == nil {
				why = f.broken(seq)
			}
			return why != nil
		})
		if errors.Is(err, shm.ErrStopped) {
			return why
		}
		if err != nil || f.came(seq) {
			return err
		}
	}
}

// came reports whether every rank's cell says it has come to call seq.
func (f *hostFlags) came(seq uint32) bool {
	for _, l := range f.locals {
		if int32(uint32(f.ch.Cell(l)>>8)-seq) < 0 {
			return false
		}
	}
	return true
}

// broken is why the wait for call seq on c's flags can never end, or nil:
// c is closed, the world failed (aborted, its connection lost), or a rank
// of c that has not come to seq is gone (closed its world, or died), as a
// receive from it would fail. A rank gone after it came is no reason: the
// wait may be for another's arrival still (the count ran ahead, see wait).
func (f *hostFlags) broken(seq uint32) error {
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
		w := c.worldRank(r)
		if e.peers[w].gone && int32(uint32(f.ch.Cell(f.locals[r])>>8)-seq) < 0 {
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

// Lend: a rank's own memory, as another rank of the host reads it (the
// single copies' address, see singlecopy.go); none where single copies
// are off.
func (f *hostFlags) Lend(data []byte) (uint64, bool) {
	if f.c.e.host == 0 || len(data) == 0 {
		return 0, false
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(data)))), true
}

// Copy reads rank's memory as a single copy does: only a process that is
// that rank (the pid it announced, vouched for at start-up), tried once
// per peer (canRead); then it checks that rank still lends it.
func (f *hostFlags) Copy(seq uint32, rank int, addr uint64, dst []byte) error {
	c := f.c
	e := c.e
	if rank < 0 || rank >= c.Size() || len(dst) == 0 {
		return fmt.Errorf("mpi: a copy of %d bytes from rank %d of %d", len(dst), rank, c.Size())
	}
	w := c.worldRank(rank)
	e.mu.Lock()
	ann := e.peerInfo[w]
	ok := e.canRead(w, offer{pid: ann.pid, host: ann.host, addr: addr})
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("mpi: rank %d cannot read the memory of rank %d", c.Rank(), rank)
	}
	if err := e.read(ann.pid, addr, dst); err != nil {
		return fmt.Errorf("mpi: reading %d bytes of rank %d: %w", len(dst), rank, err)
	}
	if !f.ch.Holds(seq, f.locals[rank]) {
		return fmt.Errorf("mpi: copying %d bytes of rank %d: %w", len(dst), rank, hostsync.ErrWithdrawn)
	}
	e.paths.copyBytes.Add(int64(len(dst)))
	return nil
}

func (f *hostFlags) Withdraw(seq uint32) { f.ch.Withdraw(seq) }

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
