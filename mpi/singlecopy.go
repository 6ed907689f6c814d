package mpi

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// Single-copy transfers. When sender and receiver of a rendezvous message
// run on the same machine, the receiver copies the message straight out of
// the sender's memory (Linux's process_vm_readv), and only the handshake
// goes over the bus: the bytes never pass through the server. The sender's
// RTS carries an offer (its pid, its machine's identity and the data's
// address); a receiver on the same machine that can read the sender (tried
// once per peer, on the first offer) answers with a pull frame instead of a
// CTS. The sender answers go, after which the send can no longer be
// withdrawn; the receiver copies and answers done, which completes the
// send. A receiver that cannot read the sender grants chunks as usual, so a
// SendAll can reach some ranks one way and the rest the other.
//
// A rank's key proves which rank it is, not which process: the pid a rank
// announces is read only when it is this process (mpitest's ranks) or the
// one the launcher started as that rank (handshake.go, vouch). An offer
// from any other rank is refused the same way: the receiver grants chunks,
// and the message comes through the bus, whole.

// offerLen is the size of an RTS's offer payload.
const offerLen = 20

// offer is where a rendezvous message's bytes lie at its sender.
type offer struct {
	pid  int
	host uint64 // hostIdentity of the sender's machine; 0: no offer
	addr uint64
}

func appendOffer(b []byte, o offer) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(o.pid))
	b = binary.LittleEndian.AppendUint64(b, o.host)
	return binary.LittleEndian.AppendUint64(b, o.addr)
}

func parseOffer(b []byte) (offer, bool) {
	if len(b) != offerLen {
		return offer{}, false
	}
	return offer{
		pid:  int(binary.LittleEndian.Uint32(b)),
		host: binary.LittleEndian.Uint64(b[4:]),
		addr: binary.LittleEndian.Uint64(b[12:]),
	}, true
}

// Per-peer single-copy state, as seen by a receiver.
const (
	readUnknown = iota // not tried yet
	readOK             // this rank can read the peer's memory
	readNo             // it cannot: grant chunks
)

// offerFor returns the payload of the RTS of rendezvous send r: an offer,
// or nil when single-copy transfers are off. It is the engine's one offer
// buffer, valid until the next call (a transport keeps nothing of what it
// sends). Called with e.mu held.
func (e *engine) offerFor(r *Request) []byte {
	if e.host == 0 || len(r.data) == 0 {
		return nil
	}
	addr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(r.data))))
	return appendOffer(e.offerBuf[:0], offer{pid: e.pid, host: e.host, addr: addr})
}

// canRead reports whether this rank can copy the offered message out of
// src's memory; it tries a one-byte read the first time. The offer's pid is
// the one src announced in the start-up handshake (checkRTS made sure), and
// that is this process or one that this rank's launcher started as src
// (vouch: any other peer is readNo from the start), so a rank never reads
// a process that is not the sending rank. Called with e.mu held.
func (e *engine) canRead(src int, o offer) bool {
	if e.host == 0 || o.host != e.host {
		return false
	}
	switch e.readable[src] {
	case readOK:
		return true
	case readNo:
		return false
	}
	var b [1]byte
	if err := e.read(o.pid, o.addr, b[:]); err != nil {
		if permanentReadError(err) {
			e.readable[src] = readNo
		}
		return false
	}
	e.readable[src] = readOK
	return true
}

// startPull begins a single-copy receive: r has matched v, whose sender
// offered o. Called with e.mu held.
func (e *engine) startPull(r *Request, v *envelope) {
	r.pull = v.offer
	e.recvs[xferKey{v.src, v.id}] = r
	e.publish(v.src, header{kind: kPull, src: e.rank, id: v.id}, nil)
}

// onPull: a receiver is about to copy message id out of this rank's memory.
// It may, at once for a point-to-point message; for a multicast one once
// every rank has answered the RTS, as chunks wait for every grant, so that
// a withdrawn SendAll reaches no rank. Once a receiver may copy, the send
// cannot be withdrawn until it is done.
func (e *engine) onPull(subj string, h header) {
	r := e.sends[h.id]
	if r == nil {
		return // withdrawn: the receiver gets the cancel
	}
	switch {
	case !r.mcast && r.peer != h.src:
		e.violation(subj, "id", "a pull of message %d, which this rank sent to rank %d", h.id, r.peer)
		return
	case e.offerFor(r) == nil:
		e.violation(subj, "kind", "a pull of message %d, which this rank did not offer", h.id)
		return
	case !r.mcast && (r.readers > 0 || r.off > 0), r.mcast && (r.pulled[h.src] != pullNone || r.grants[h.src] > 0):
		e.violation(subj, "kind", "a pull of message %d, which the rank already pulled or was granted", h.id)
		return
	}
	if r.mcast {
		r.pulled[h.src] = pullWanted
		e.progress(r)
		return
	}
	e.letCopy(r, h.src)
}

// letCopy tells the receiver dst of r to copy it.
func (e *engine) letCopy(r *Request, dst int) {
	r.readers++
	e.publish(dst, header{kind: kGo, src: e.rank, id: r.id}, nil)
}

// onGo: the sender keeps message id in place until we are done: copy it.
func (e *engine) onGo(subj string, h header) {
	key := xferKey{h.src, h.id}
	r := e.recvs[key]
	if r == nil {
		return
	}
	if r.pull.host == 0 || r.stage == stageCopying {
		e.violation(subj, "kind", "a go for message %d, which this rank did not pull or already copies", h.id)
		return
	}
	if r.abandoned {
		delete(e.recvs, key)
		e.publish(h.src, header{kind: kDone, src: e.rank, id: h.id}, nil)
		return
	}
	r.stage = stageCopying
	go e.copyOut(r, key)
}

// copyOut copies r's message out of the sender's memory, without e.mu held,
// then tells the sender.
func (e *engine) copyOut(r *Request, key xferKey) {
	var buf []byte
	var err error
	if r.size > bigAlloc {
		// Before allocating a size the RTS gave, check that the sender
		// really has that many bytes there.
		var last [1]byte
		err = e.read(r.pull.pid, r.pull.addr+uint64(r.size-1), last[:])
	}
	if err == nil {
		if r.hasInto {
			buf = r.into[:r.size]
		} else {
			buf = make([]byte, r.size)
		}
		err = e.read(r.pull.pid, r.pull.addr, buf)
		if err == nil {
			e.paths.copyBytes.Add(int64(len(buf)))
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r.stage = stageNone
	if e.err != nil {
		e.finish(r, e.err) // failAll leaves a receive that is copying to end here
		return
	}
	delete(e.recvs, key)
	var failed uint64
	if err != nil {
		failed = 1
	}
	e.publish(key.src, header{kind: kDone, src: e.rank, id: key.id, n: failed}, nil)
	switch {
	case r.abandoned:
	case err != nil:
		e.finish(r, &RankError{Rank: r.status.Source, Op: "recv", Err: fmt.Errorf("copying the message out of its memory: %v", err)})
	default:
		r.data = buf
		e.finish(r, nil)
	}
}

// onDone: a receiver has copied message id (or failed to, when h.n is 1),
// or has dropped it unread because it did not fit its buffer.
func (e *engine) onDone(subj string, h header) {
	r := e.sends[h.id]
	if r == nil {
		return
	}
	switch {
	case !r.mcast && r.peer != h.src:
		e.violation(subj, "id", "a done for message %d, which this rank sent to rank %d", h.id, r.peer)
		return
	case h.n > 1:
		e.violation(subj, "n", "%d, want 0 or 1", h.n)
		return
	case r.mcast && r.pulled[h.src] == pullDone:
		e.violation(subj, "kind", "a second done for message %d", h.id)
		return
	}
	if (r.mcast && r.pulled[h.src] == pullReading) || (!r.mcast && r.readers > 0) {
		r.readers--
	} // else the receiver took the message without copying it (it did not fit)
	if h.n != 0 && r.err == nil {
		r.err = &RankError{Rank: r.c.commRank(h.src), Op: "send", Err: fmt.Errorf("the receiver could not copy the message out of this rank's memory")}
	}
	if r.mcast {
		r.pulled[h.src] = pullDone
		e.progress(r)
		return
	}
	delete(e.sends, r.id)
	e.finish(r, r.err)
}

// giveUp ends send r with err although receivers may still be copying it:
// they have not answered for copyGrace, and are taken for dead. A late
// answer finds nothing.
func (e *engine) giveUp(r *Request, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !r.finished {
		delete(e.sends, r.id)
		e.finish(r, err)
	}
}
