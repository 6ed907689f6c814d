package collectives

import (
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// The first phase of every call runs along the agreement tree (agreeTree):
// up, each rank sends its parent its status, merged with its subtree's, and
// a payload; rank 0, the leader, merges every status and takes the
// verdict; down, the leader's merged status goes back to every rank, with
// payloads. Every rank thus takes the same verdict from the same status.
// The pattern is the same for every collective, so ranks that call
// different collectives at the same point find out too.
//
// Small data rides in these messages (so a small call costs two hops and
// 2(n-1) messages in all, the check included); large data moves in a second
// phase once the ranks agree. On a bus where every message passes through
// one server, the number of messages is what costs: with 8 ranks on 2 cores,
// a barrier this way takes half the time of a dissemination barrier.

// tree is rank's place in the call's agreement tree (agreeTree).
func (x *call) tree(rank int) (parent int, children []int, lo, hi int) {
	return agreeTree(rank, x.size, x.sh.starts)
}

// downPayload is what the leader sends down: a block for every rank and a
// block per rank. nil blocks are none.
type downPayload struct {
	common []byte
	per    [][]byte // indexed by rank; nil: none
}

// agree runs the first phase. up makes this rank's payload for its parent
// from its children's payloads (in the order of children, nil where a child
// sent none); it is called on every rank, the leader included, whose result
// goes to lead. lead, called on the leader only when the calls agree, makes
// the payloads that go down; it may set x.st.info, which every rank then
// sees. Either may be nil. agree returns the blocks that came down for this
// rank, or the verdict's error, the same on every rank.
func (x *call) agree(up func(kids [][]byte) []byte, lead func(mine []byte) downPayload) (common, own []byte, err error) {
	parent, children, lo, hi := x.tree(x.rank)
	tag := x.tag(phaseAgree)

	// Up: hear from the children, then tell the parent.
	recvs := make([]*mpi.Request, len(children))
	for i, ch := range children {
		recvs[i] = x.c.Irecv(ch, tag)
	}
	kids := make([][]byte, len(children))
	for i, r := range recvs {
		if _, err := r.Wait(x.ctx); err != nil {
			for _, q := range recvs[i:] {
				q.Cancel()
			}
			return nil, nil, opError(x.k, err)
		}
		p, err := x.absorb(children[i], r.Data(), true)
		if err != nil {
			return nil, nil, err
		}
		kids[i] = p
	}
	var mine []byte
	if up != nil {
		mine = up(kids)
	}
	if x.sh.beforeUp != nil {
		x.sh.beforeUp()
	}
	x.checkConcurrent()
	var down downPayload
	if parent >= 0 {
		msg := x.message(mine, mine != nil)
		b, err := x.exchange(phaseAgree, parent, msg, parent)
		if err != nil {
			return nil, nil, err
		}
		p, err := x.absorb(parent, b, false)
		if err != nil {
			return nil, nil, err
		}
		if p != nil {
			blocks, err := parseBlocks(p)
			if err != nil || len(blocks) < 1 {
				return nil, nil, fmt.Errorf("collectives: %s: malformed message from rank %d", x.k, parent)
			}
			down.common = blocks[0]
			if len(blocks) == 1+hi-lo {
				down.per = make([][]byte, x.size)
				copy(down.per[lo:hi], blocks[1:])
			}
		}
	} else if x.verdict() == nil && lead != nil {
		down = lead(mine)
	}

	// Down: pass the leader's status, and each child's part of the
	// payloads, on: as one publish that the bus fans out when every other
	// rank is a child and they all get the same message.
	if len(children) > 0 && len(children) == x.size-1 && down.per == nil && x.c.Multicast() {
		has := down.common != nil
		var p []byte
		if has {
			p = appendBlocks(nil, [][]byte{down.common})
		}
		if err := x.c.SendAll(x.ctx, tag, x.message(p, has)); err != nil {
			return nil, nil, opError(x.k, err)
		}
	} else if len(children) > 0 {
		sends := make([]*mpi.Request, len(children))
		for i, ch := range children {
			var p []byte
			has := down.common != nil || down.per != nil
			if has {
				_, _, clo, chi := x.tree(ch)
				blocks := [][]byte{down.common}
				if down.per != nil {
					blocks = append(blocks, down.per[clo:chi]...)
				}
				p = appendBlocks(nil, blocks)
			}
			sends[i] = x.c.Isend(ch, tag, x.message(p, has))
		}
		if err := x.waitAll(sends); err != nil {
			return nil, nil, err
		}
	}
	if err := x.verdict(); err != nil {
		return nil, nil, err
	}
	if down.per != nil {
		own = down.per[x.rank]
	}
	return down.common, own, nil
}
