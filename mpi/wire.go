package mpi

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// The wire format is described in protocol.go. This file is its only encoder and
// decoder.

// Frame kinds.
const (
	kEager  byte = 1 // header + the whole message
	kRTS    byte = 2 // request to send: a message of n bytes waits for a receive
	kCTS    byte = 3 // clear to send: the receiver takes bytes [0, n) of message id
	kCredit byte = 4 // the receiver consumed n bytes of eager credit
	kCancel byte = 5 // the sender withdrew message id
	kPull   byte = 6 // the receiver will copy message id out of the sender's memory
	kGo     byte = 7 // the sender keeps message id in place until done
	kDone   byte = 8 // the receiver has copied message id (n = 1: it failed to)
	kBye    byte = 9 // the sender closed its world, after n multicast frames
	// kChunk is a chunk of rendezvous message id at offset n. The NATS
	// transport carries it in a token only (see below), never with a
	// binary header.
	kChunk byte = 10
)

// hdrLen is the size of the binary header in front of every frame but those
// that carry a token header (see below).
const hdrLen = 40

// frameCost is what an eager frame costs the receiver beyond its payload, in
// eager credit: the header plus the receiver's bookkeeping for it.
const frameCost = 128

// header is a decoded frame header.
type header struct {
	kind byte
	src  int    // world rank of the sender of this frame
	comm uint64 // communicator context id
	tag  int
	id   uint64 // message id, unique per sender
	n    uint64 // RTS: size; CTS: granted up to; Credit: bytes
}

func putHeader(b []byte, h header) {
	_ = b[hdrLen-1]
	b[0], b[1], b[2], b[3] = h.kind, 0, 0, 0
	binary.LittleEndian.PutUint32(b[4:], uint32(h.src))
	binary.LittleEndian.PutUint64(b[8:], h.comm)
	binary.LittleEndian.PutUint32(b[16:], uint32(h.tag))
	binary.LittleEndian.PutUint32(b[20:], 0)
	binary.LittleEndian.PutUint64(b[24:], h.id)
	binary.LittleEndian.PutUint64(b[32:], h.n)
}

var errShortFrame = errors.New("mpi: frame shorter than its header")

func parseHeader(b []byte) (header, error) {
	if len(b) < hdrLen {
		return header{}, errShortFrame
	}
	return header{
		kind: b[0],
		src:  int(binary.LittleEndian.Uint32(b[4:])),
		comm: binary.LittleEndian.Uint64(b[8:]),
		tag:  int(int32(binary.LittleEndian.Uint32(b[16:]))),
		id:   binary.LittleEndian.Uint64(b[24:]),
		n:    binary.LittleEndian.Uint64(b[32:]),
	}, nil
}

// Frames that carry message bytes without a binary header (data chunks,
// and eager messages of at least bigEager bytes) carry their header in the
// NATS reply subject instead, as a token, so that the payload goes out
// without another copy:
//
//	c.<src>.<id>.<offset>   a chunk of rendezvous message id
//	e.<src>.<comm>.<tag>    a whole eager message
const (
	tokChunk = 'c'
	tokEager = 'e'
)

// bigEager is the size from which an eager message travels with a token
// header: above it, a copy costs more than the token's allocation.
const bigEager = 4 << 10

func makeToken(kind byte, src int, a uint64, b int) string {
	var buf [72]byte
	s := append(buf[:0], kind, '.')
	s = strconv.AppendInt(s, int64(src), 10)
	s = append(s, '.')
	s = strconv.AppendUint(s, a, 10)
	s = append(s, '.')
	s = strconv.AppendInt(s, int64(b), 10)
	return string(s)
}

func parseToken(t string) (kind byte, src int, a uint64, b int, ok bool) {
	if len(t) < 2 || t[1] != '.' {
		return 0, 0, 0, 0, false
	}
	kind = t[0]
	x, rest, ok1 := strings.Cut(t[2:], ".")
	y, z, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return 0, 0, 0, 0, false
	}
	s, err1 := strconv.Atoi(x)
	i, err2 := strconv.ParseUint(y, 10, 64)
	o, err3 := strconv.Atoi(z)
	if err1 != nil || err2 != nil || err3 != nil || s < 0 || o < 0 {
		return 0, 0, 0, 0, false
	}
	return kind, s, i, o, true
}
