package mpi

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// Fault tolerance after a rank is lost (ULFM's MPIX_Comm_agree and
// MPIX_Comm_shrink): under gorun --on-failure continue a rank that dies is
// gone for good, and what waits for it fails with ErrPeerDied; Agree and
// Shrink let the others go on together.

// Internal tags of Agree (on the communicator's internal context).
const (
	agreeFloodTag = 2 // each rank's flag and the ranks it knows lost, to every rank
	agreeRoundTag = 3 // round k: rank k's estimate, to every rank
)

// Agree returns the bitwise AND of flag over the ranks of c that take part
// (MPIX_Comm_agree): every rank of c that is not lost must call it, and
// every one that returns gets the same value, even if ranks are lost while
// it runs (a lost rank's flag may count or not, the same for all). It
// fails only with ctx's end, a closed communicator, or a lost connection.
// Agree is the way for the survivors of a failure to decide together, for
// instance whether to go on, before Shrink.
func (c *Comm) Agree(ctx context.Context, flag int) (int, error) {
	if ctx == nil {
		return 0, nilContext("agree")
	}
	defer c.span(ctx).end(c, "Agree", blocked.None, 0, 0)
	v, _, err := c.agree(ctx, uint64(int64(flag)))
	return int(int64(v)), err
}

// Shrink returns a communicator of the ranks of c that are not lost, in
// the order they have in c (MPIX_Comm_shrink): every rank of c that is not
// lost must call it, and all get the same communicator, even if ranks are
// lost while it runs. A rank lost after Shrink makes the new communicator
// fail as it made c fail; Shrink it again then.
func (c *Comm) Shrink(ctx context.Context) (*Comm, error) {
	if ctx == nil {
		return nil, nilContext("shrink")
	}
	defer c.span(ctx).end(c, "Shrink", blocked.None, 0, 0)
	seq := c.derived.Add(1)
	_, lost, err := c.agree(ctx, 1)
	if err != nil {
		return nil, err
	}
	d := &Comm{e: c.e, id: deriveID(c.id, seq, -3), name: c.label() + "/shrink" + strconv.FormatUint(seq, 10), quiet: c.quiet}
	d.index = make(map[int]int)
	for r := range c.Size() {
		if lost[r] {
			continue
		}
		w := c.worldRank(r)
		if r == c.rank {
			d.rank = len(d.group)
		}
		d.index[w] = len(d.group)
		d.group = append(d.group, w)
	}
	return d, nil
}

// agree is the consensus of Agree and Shrink on (the AND of the flags, the
// ranks lost), with a perfect failure detector (a rank is lost only once
// gone: it closed its world, or gorun said it died) and the rotating
// coordinator of Chandra and Toueg. First every rank sends its flag and
// the ranks it knows lost to every other, and makes its estimate of both
// from what comes (a rank lost meanwhile counts as lost). Then, in round k
// for k = 0, 1, ..., n-1, rank k (unless lost) sends its estimate to every
// rank, and each that hears it adopts it. Once a rank that is never lost
// has had its round, every rank that goes on holds its estimate, and the
// later rounds send only that: so all decide alike.
func (c *Comm) agree(ctx context.Context, flag uint64) (uint64, []bool, error) {
	if err := c.check(); err != nil {
		return 0, nil, err
	}
	n, cid := c.Size(), c.internal()
	seq := c.agreed.Add(1)
	lost := c.lostMembers()
	est := flag
	var sends []*Request
	defer func() {
		for _, r := range sends {
			r.Cancel()
		}
	}()
	broadcast := func(tag int) {
		msg := agreeMsg(seq, est, lost)
		for r := range n {
			if r != c.rank && !lost[r] {
				sends = append(sends, c.isend("agree", cid, r, tag, msg))
			}
		}
	}
	broadcast(agreeFloodTag)
	for r := range n {
		if r == c.rank || lost[r] {
			continue
		}
		v, l, err := c.agreeRecv(ctx, cid, r, agreeFloodTag, seq)
		if errors.Is(err, ErrPeerLost) {
			lost[r] = true
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		est &= v
		for i, x := range l {
			lost[i] = lost[i] || x
		}
	}
	for k := range n {
		if k == c.rank {
			broadcast(agreeRoundTag)
			continue
		}
		if lost[k] {
			continue
		}
		v, l, err := c.agreeRecv(ctx, cid, k, agreeRoundTag, seq)
		if errors.Is(err, ErrPeerLost) {
			continue // lost before it told every rank: a later round makes all alike
		}
		if err != nil {
			return 0, nil, err
		}
		est, lost = v, l
	}
	// The sends to ranks lost meanwhile fail; the others complete.
	for _, r := range sends {
		if _, err := r.Wait(ctx); err != nil && !errors.Is(err, ErrPeerLost) {
			return 0, nil, err
		}
	}
	sends = nil
	return est, lost, nil
}

// agreeRecv receives rank src's message of Agree call seq on tag, skipping
// what a lost rank sent in an earlier call that this one never received.
func (c *Comm) agreeRecv(ctx context.Context, cid uint64, src, tag int, seq uint64) (uint64, []bool, error) {
	for {
		b, _, err := c.recv(ctx, "agree", cid, src, tag)
		if err != nil {
			return 0, nil, err
		}
		s, v, l, ok := parseAgree(b, c.Size())
		if !ok {
			return 0, nil, errorf("mpi: agree: rank %d sent a malformed message of %d bytes: %w", src, len(b), ErrProtocol)
		}
		if s == seq {
			return v, l, nil
		}
	}
}

// agreeMsg is Agree's message: the call's number, the value, and a bit per
// rank of the communicator, set for the ones lost.
func agreeMsg(seq, v uint64, lost []bool) []byte {
	b := binary.LittleEndian.AppendUint64(nil, seq)
	b = binary.LittleEndian.AppendUint64(b, v)
	bits := make([]byte, (len(lost)+7)/8)
	for i, x := range lost {
		if x {
			bits[i/8] |= 1 << (i % 8)
		}
	}
	return append(b, bits...)
}

func parseAgree(b []byte, n int) (seq, v uint64, lost []bool, ok bool) {
	if len(b) != 16+(n+7)/8 {
		return 0, 0, nil, false
	}
	lost = make([]bool, n)
	for i := range lost {
		lost[i] = b[16+i/8]&(1<<(i%8)) != 0
	}
	return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), lost, true
}

// lostMembers reports, for each rank of c, whether it is gone.
func (c *Comm) lostMembers() []bool {
	lost := make([]bool, c.Size())
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	for r := range lost {
		lost[r] = r != c.rank && c.e.peers[c.worldRank(r)].gone
	}
	return lost
}
