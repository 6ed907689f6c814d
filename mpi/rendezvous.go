package mpi

import (
	"fmt"
)

// Rendezvous: a large message waits at its sender until a receive has
// matched it; the receiver grants its window, the sender streams chunks.

// maxMessage bounds the size an RTS may announce: 256 TiB, more than any
// slice a Go process can hold. A larger size is a protocol error.
const maxMessage = 1 << 48

// bigAlloc is the largest buffer a chunked receive allocates at once, on the
// size its RTS announced; the buffer of a larger message grows with the
// bytes that really arrive, so that a forged size cannot make a rank
// allocate what no sender sends.
const bigAlloc = 256 << 20

// onCTS streams the granted part of a rendezvous send.
func (e *engine) onCTS(subj string, h header) {
	r := e.sends[h.id]
	if r == nil {
		return // withdrawn
	}
	if !r.mcast && r.peer != h.src {
		e.violation(subj, "id", "a grant for message %d, which this rank sent to rank %d", h.id, r.peer)
		return
	}
	prev := r.off
	if r.mcast {
		prev = r.grants[h.src]
		if r.pulled[h.src] != pullNone {
			e.violation(subj, "kind", "a grant for message %d, which the rank copies itself", h.id)
			return
		}
	}
	if h.n <= uint64(prev) || h.n > uint64(len(r.data)) {
		e.violation(subj, "n", "a grant up to byte %d of message %d, of %d bytes, already granted up to %d", h.n, h.id, len(r.data), prev)
		return
	}
	upto := int(h.n)
	if r.mcast {
		r.grants[h.src] = upto
		e.progress(r)
		return
	}
	if !e.stream(r, r.peer, upto) {
		return
	}
	if r.off == len(r.data) {
		delete(e.sends, r.id)
		e.finish(r, nil)
	}
}

// stream sends r's chunks up to byte upto to dst (or toAll). It reports
// false if the connection failed.
func (e *engine) stream(r *Request, dst int, upto int) bool {
	for r.off < upto {
		n := min(e.chunk, upto-r.off)
		if !e.publish(dst, header{kind: kChunk, src: e.rank, id: r.id, n: uint64(r.off)}, r.data[r.off:r.off+n]) {
			return false
		}
		r.off += n
	}
	return true
}

// startRecv begins the rendezvous of a large message matched by r.
func (e *engine) startRecv(r *Request, v *envelope) {
	r.rendezvous, r.id, r.size = true, v.id, v.size
	r.from = v.src
	traceArrived(r.c, v.src, r.comm, v.tag)
	r.status = Status{Source: r.c.commRank(v.src), Tag: v.tag, Count: v.size}
	if v.size == 0 {
		// An empty synchronous send: nothing to grant or copy; the done
		// tells its sender that a receive matched it.
		e.publish(v.src, header{kind: kDone, src: e.rank, id: v.id}, nil)
		r.data = r.into[:0]
		e.finish(r, nil)
		return
	}
	if r.hasInto {
		if v.size > len(r.into) {
			// The message is taken, and dropped: the sender is done with it.
			e.publish(v.src, header{kind: kDone, src: e.rank, id: v.id}, nil)
			e.finish(r, truncated(r, v.size))
			return
		}
		r.data = r.into[:v.size]
	}
	if v.offer.host != 0 && e.canRead(v.src, v.offer) {
		e.startPull(r, v)
		return
	}
	e.recvs[xferKey{v.src, v.id}] = r
	e.grantQ = append(e.grantQ, r)
	e.pumpGrants()
}

// pumpGrants hands out rendezvous window to the receives waiting for it,
// first come first served.
func (e *engine) pumpGrants() {
	for len(e.grantQ) > 0 {
		r := e.grantQ[0]
		g := min(r.size-r.granted, e.grantStep)
		if int64(g) > e.window {
			return
		}
		e.window -= int64(g)
		e.stats.peakWindow = max(e.stats.peakWindow, int64(e.opts.RendezvousWindow)-e.window)
		r.granted += g
		e.publish(r.from, header{kind: kCTS, src: e.rank, id: r.id, n: uint64(r.granted)}, nil)
		if r.granted == r.size {
			e.grantQ[0] = nil
			e.grantQ = e.grantQ[1:]
		}
	}
}

// onChunk takes a chunk of rendezvous message id, at byte off.
func (e *engine) onChunk(where string, src int, id, off uint64, data []byte, mc bool) {
	r := e.recvs[xferKey{src, id}]
	if r == nil {
		e.drops.Add(1) // not ours (withdrawn, or never announced)
		return
	}
	if r.pull.host != 0 {
		if !mc {
			e.violation(where, "reply token", "a chunk of message %d, which this rank copies itself", id)
		}
		return // multicast chunks for the ranks that do not copy
	}
	if off != uint64(r.off) || len(data) == 0 || len(data) > r.granted-r.off {
		e.violation(where, "reply token", "a chunk of %d bytes at offset %d of message %d; %d bytes arrived, %d granted", len(data), off, id, r.off, r.granted)
		return
	}
	e.window += int64(len(data))
	if at := r.off; !r.abandoned {
		if r.data == nil && at == 0 && len(data) == r.size {
			r.data = data // the whole message in one chunk: keep it, no copy
		} else {
			if len(r.data) < at+len(data) {
				r.data = growBuffer(r.data, at+len(data), r.size)
			}
			copy(r.data[at:], data)
		}
	}
	r.off += len(data)
	if r.off == r.size {
		delete(e.recvs, xferKey{src, id})
		if r.abandoned {
			r.data = nil
		} else {
			e.finish(r, nil)
		}
	}
	e.pumpGrants()
}

// growBuffer returns buf (a chunked receive's message so far) with room for
// need bytes of a size-byte message: all of it at once up to bigAlloc,
// beyond that doubling with the bytes that arrive.
func growBuffer(buf []byte, need, size int) []byte {
	n := size
	if size > bigAlloc {
		n = min(size, max(need, 2*len(buf), bigAlloc))
	}
	b := make([]byte, n)
	copy(b, buf)
	return b
}

// onCancel withdraws a rendezvous message whose sender gave up.
func (e *engine) onCancel(subj string, h header) {
	key := xferKey{h.src, h.id}
	if r := e.recvs[key]; r != nil {
		if r.stage == stageCopying {
			e.violation(subj, "id", "message %d withdrawn while this rank copies it", h.id)
			return
		}
		delete(e.recvs, key)
		e.window += int64(r.granted - r.off)
		e.grantQ = removeItem(e.grantQ, r)
		if !r.abandoned {
			e.finish(r, &RankError{Rank: r.status.Source, Op: "recv", Err: fmt.Errorf("sender withdrew the message: %w", ErrCanceled)})
		}
		e.pumpGrants()
		return
	}
	if e.withdrawProbed(key) {
		return
	}
	q := e.queue(h.comm)
	for i, v := range q.unexpected {
		if v.rts && v.src == h.src && v.id == h.id {
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			return
		}
	}
}
