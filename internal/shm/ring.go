//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"
)

// lineSize is the padding that keeps words written by different processes
// on different cache lines (128 B, as Open MPI pads its FIFO: adjacent-line
// prefetch pairs 64-byte lines).
const lineSize = 128

// A ring's control block: the tail's line (written by the sender), then the
// head's line (written by the receiver; the sender's want-room word, rarely
// written, shares it).
const (
	ctlTail = 0
	ctlHead = lineSize
	ctlWant = lineSize + 8
	ctlSize = 2 * lineSize
)

// frameWord is the 8-byte word before each frame: its length (bits 0-31),
// its sequence number modulo 2^24 (bits 32-55), and its stream (bits
// 56-63), a byte the sender chooses and the receiver gets back (the mpi
// transport tells a rank's inbox from the multicast stream by it).
const (
	frameWord = 8
	seqMask   = 1<<24 - 1
)

// ErrFull is Send's answer when the ring to the destination has no room for
// the frame now: the caller keeps the frame and retries after Wait.
var ErrFull = errors.New("shm: ring full")

// ErrTooBig is Send's answer for a frame larger than a ring can ever hold
// (MaxFrame).
var ErrTooBig = errors.New("shm: frame larger than a ring")

// A CorruptError is what a receiver reports, once, for a ring whose
// contents break the ring's rules (a tail more than a ring ahead, a length
// beyond what was published or beyond the ring, a sequence number out of
// turn): the frames of that sender can no longer be trusted, and its ring
// is ignored from then on. Src is the sender's local rank.
type CorruptError struct {
	Src    int
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("shm: ring from local rank %d is corrupt: %s", e.Src, e.Reason)
}

// ring is one single-producer single-consumer ring's memory: its control
// block and its data, whose length is a power of two.
type ring struct {
	ctl  []byte
	data []byte
	mask uint64
}

func newRing(ctl, data []byte) ring {
	return ring{ctl: ctl[:ctlSize:ctlSize], data: data, mask: uint64(len(data) - 1)}
}

func (r *ring) tailp() *uint64 { return (*uint64)(unsafe.Pointer(&r.ctl[ctlTail])) }
func (r *ring) headp() *uint64 { return (*uint64)(unsafe.Pointer(&r.ctl[ctlHead])) }
func (r *ring) wantp() *uint32 { return (*uint32)(unsafe.Pointer(&r.ctl[ctlWant])) }

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

// writer is the sender's end of a ring. tail and seq are its own, kept in
// its own memory; head is the receiver's, as last read.
type writer struct {
	ring
	tail, head uint64
	seq        uint32
}

// room reads the receiver's head and reports the bytes free, or an error if
// the head is not between the tail less a ring and the tail.
func (w *writer) room() (uint64, error) {
	h := atomic.LoadUint64(w.headp())
	if h > w.tail || w.tail-h > uint64(len(w.data)) {
		return 0, fmt.Errorf("shm: the receiver's head %d is outside [%d, %d]", h, w.tail-min(w.tail, uint64(len(w.data))), w.tail)
	}
	w.head = h
	return uint64(len(w.data)) - (w.tail - h), nil
}

// write puts the frame a then b (b may be empty), of stream stream, on the
// ring and publishes it. It reports ErrFull without writing, after setting the want-room word,
// when the ring has no room.
func (w *writer) write(stream byte, a, b []byte) error {
	n := uint64(len(a)) + uint64(len(b))
	if n > uint64(len(w.data))-frameWord {
		return ErrTooBig
	}
	need := frameWord + align8(n)
	if need > uint64(len(w.data))-(w.tail-w.head) {
		free, err := w.room()
		if err != nil {
			return err
		}
		if need > free {
			// Ask the receiver to ring this side's doorbell once it has
			// made room, then look again: it may have made room before it
			// could see the request.
			atomic.StoreUint32(w.wantp(), 1)
			if free, err = w.room(); err != nil {
				return err
			}
			if need > free {
				return ErrFull
			}
		}
	}
	pos := w.tail & w.mask
	binary.LittleEndian.PutUint64(w.data[pos:pos+frameWord], n|uint64(w.seq&seqMask)<<32|uint64(stream)<<56)
	pos = w.copyIn(pos+frameWord, a)
	w.copyIn(pos, b)
	w.tail += need
	w.seq++
	atomic.StoreUint64(w.tailp(), w.tail) // publishes the frame: last
	return nil
}

// copyIn copies p into the ring at pos (already masked or at most the
// ring's length), wrapping at the end, and returns the masked position
// after it.
func (w *writer) copyIn(pos uint64, p []byte) uint64 {
	pos &= w.mask
	k := copy(w.data[pos:], p)
	copy(w.data, p[k:])
	return (pos + uint64(len(p))) & w.mask
}

// reader is the receiver's end of a ring. head and seq are its own, for
// the one goroutine at a time that reads; pending, which another may call
// meanwhile, reads only the ring's published words and bad.
type reader struct {
	ring
	src  int
	head uint64
	seq  uint32
	bad  atomic.Bool // reported corrupt once: ignored from then on
}

// pending reports whether the sender has published past this side's
// published head.
func (r *reader) pending() bool {
	return !r.bad.Load() && atomic.LoadUint64(r.tailp()) != atomic.LoadUint64(r.headp())
}

func (r *reader) corrupt(format string, args ...any) error {
	r.bad.Store(true)
	return &CorruptError{Src: r.src, Reason: fmt.Sprintf(format, args...)}
}

// read appends the next frame to buf[:0] and returns its stream. ok is
// false when there is none.
// wake reports that the sender asked for room and must have its doorbell
// rung. Every figure read from the ring is checked before it is used, and
// read once.
func (r *reader) read(buf []byte) (frame []byte, stream byte, ok, wake bool, err error) {
	if r.bad.Load() {
		return buf[:0], 0, false, false, nil
	}
	tail := atomic.LoadUint64(r.tailp())
	if tail == r.head {
		return buf[:0], 0, false, false, nil
	}
	size := uint64(len(r.data))
	avail := tail - r.head // tail behind head wraps to a huge figure
	if avail > size {
		return buf[:0], 0, false, false, r.corrupt("tail %d is not within a ring (%d bytes) after head %d", tail, size, r.head)
	}
	if avail < frameWord || avail%8 != 0 {
		return buf[:0], 0, false, false, r.corrupt("tail %d leaves %d bytes after head %d, not whole frames", tail, avail, r.head)
	}
	pos := r.head & r.mask
	word := binary.LittleEndian.Uint64(r.data[pos : pos+frameWord])
	n, seq := word&0xffffffff, uint32(word>>32)&seqMask
	if seq != r.seq&seqMask {
		return buf[:0], 0, false, false, r.corrupt("frame %d has sequence number %d", r.seq, seq)
	}
	if n > size-frameWord || frameWord+align8(n) > avail {
		return buf[:0], 0, false, false, r.corrupt("frame %d claims %d bytes; %d were published", r.seq, n, avail-frameWord)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	pos = (pos + frameWord) & r.mask
	k := copy(buf, r.data[pos:])
	copy(buf[k:], r.data)
	r.head += frameWord + align8(n)
	r.seq++
	atomic.StoreUint64(r.headp(), r.head)
	if atomic.LoadUint32(r.wantp()) != 0 && atomic.CompareAndSwapUint32(r.wantp(), 1, 0) {
		wake = true
	}
	return buf, byte(word >> 56), true, wake, nil
}
