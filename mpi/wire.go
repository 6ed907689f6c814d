package mpi

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// The wire format is described in doc.go. This file is its only encoder and
// decoder.

// Frame kinds.
const (
	kEager  byte = 1 // header + the whole message
	kRTS    byte = 2 // request to send: a message of n bytes waits for a receive
	kCTS    byte = 3 // clear to send: the receiver takes bytes [0, n) of message id
	kCredit byte = 4 // the receiver consumed n bytes of eager credit
	kCancel byte = 5 // the sender withdrew message id
)

// hdrLen is the size of the binary header in front of every frame but data
// chunks, which carry their header in the NATS reply subject instead so that
// their payload goes out without another copy.
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

// chunkToken is the reply subject that carries a data chunk's header:
// "<src>.<id>.<offset>".
func chunkToken(src int, id uint64, off int) string {
	var b [64]byte
	s := strconv.AppendInt(b[:0], int64(src), 10)
	s = append(s, '.')
	s = strconv.AppendUint(s, id, 10)
	s = append(s, '.')
	s = strconv.AppendInt(s, int64(off), 10)
	return string(s)
}

func parseChunkToken(t string) (src int, id uint64, off int, ok bool) {
	a, rest, ok1 := strings.Cut(t, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	s, err1 := strconv.Atoi(a)
	i, err2 := strconv.ParseUint(b, 10, 64)
	o, err3 := strconv.Atoi(c)
	if err1 != nil || err2 != nil || err3 != nil || s < 0 || o < 0 {
		return 0, 0, 0, false
	}
	return s, i, o, true
}
