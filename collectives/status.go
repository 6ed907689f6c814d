package collectives

import (
	"encoding/binary"
	"fmt"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// A status travels in the header of every message of the first phase of a
// collective call. It holds what the ranks must agree on, as the extremes
// seen so far (with the ranks that passed them), and the first local error.
// Merging statuses is idempotent, commutative and associative, so the
// leader's merged status does not depend on the order it hears in; every
// rank adopts it on the way down and takes the same verdict from it: go on,
// or fail with the same error.

// kind names a collective; it is in every header, so that ranks that call
// different collectives at the same point find out.
type kind uint8

const (
	kBarrier kind = iota + 1
	kBcast
	kScatter
	kScatterv
	kGather
	kAllgather
	kReduce
	kAllreduce
	kAlltoall
	kScan
	kExscan
	kScatterValues
	kAlltoallv
	kGatherv
	kAllgatherv
	kReduceScatterBlock
	kReduceScatter
	kReduceFunc
	kAllreduceFunc
	kindEnd
)

var kindNames = [...]string{"", "Barrier", "Bcast", "Scatter", "Scatterv", "Gather", "Allgather", "Reduce", "Allreduce", "Alltoall", "Scan", "Exscan", "ScatterValues",
	"Alltoallv", "Gatherv", "Allgatherv", "ReduceScatterBlock", "ReduceScatter", "ReduceFunc", "AllreduceFunc"}

func (k kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("collective(%d)", uint8(k))
}

// kindOps count each collective's calls, for gorun --stats.
var kindOps = func() (ops [kindEnd]blocked.Op) {
	for k := kBarrier; k < kindEnd; k++ {
		ops[k] = blocked.NewOp(k.String())
	}
	return
}()

// hasRoot says whether collective k has a root.
func (k kind) hasRoot() bool {
	switch k {
	case kBcast, kScatter, kScatterv, kGather, kReduce, kScatterValues, kGatherv, kReduceFunc:
		return true
	}
	return false
}

// The fields every rank passes and that must agree.
const (
	fKind = iota // the collective called
	fType        // hash of the element type
	fRoot        // the root (0 for collectives without one)
	fLen         // len(data), where it must agree (0 otherwise)
	nFields
)

// extremes is the smallest and largest value of one field seen so far,
// with the lowest rank that passed each.
type extremes struct {
	lo, hi         int64
	loRank, hiRank int32
}

func (x *extremes) merge(o extremes) {
	if o.lo < x.lo || (o.lo == x.lo && o.loRank < x.loRank) {
		x.lo, x.loRank = o.lo, o.loRank
	}
	if o.hi > x.hi || (o.hi == x.hi && o.hiRank < x.hiRank) {
		x.hi, x.hiRank = o.hi, o.hiRank
	}
}

type status struct {
	f       [nFields]extremes
	info    int64 // set by the root only (others -1), merged by max
	errRank int32 // the lowest rank with a local error, or -1
	errCode uint8
	errText string // that rank's error message
}

// init sets s to the status of one rank's call before it has heard from
// any other.
func (s *status) init(rank int, k kind, typeID int64, root, length int) {
	*s = status{info: -1, errRank: -1}
	for i, v := range [nFields]int64{int64(k), typeID, int64(root), int64(length)} {
		s.f[i] = extremes{lo: v, hi: v, loRank: int32(rank), hiRank: int32(rank)}
	}
}

// fail records this rank's local error.
func (s *status) fail(rank int, err *argError) {
	if s.errRank < 0 || int32(rank) < s.errRank {
		s.errRank, s.errCode, s.errText = int32(rank), codeOf(err), err.text
	}
}

// codeOf is the code that travels for err: the inverse of sentinel.
func codeOf(err *argError) uint8 {
	for code := codeRank; code < codeEnd; code++ {
		if sentinel(code) == err.err {
			return code
		}
	}
	return codeMismatch
}

func (s *status) merge(o *status) {
	for i := range s.f {
		s.f[i].merge(o.f[i])
	}
	s.info = max(s.info, o.info)
	if o.errRank >= 0 && (s.errRank < 0 || o.errRank < s.errRank) {
		s.errRank, s.errCode, s.errText = o.errRank, o.errCode, o.errText
	}
}

// err returns the error every rank returns for the merged status s, or nil
// when the calls agree. local is this rank's own argument error, if any,
// returned as it is on the rank that found it.
func (s *status) err(rank int, k kind, elem string, local *argError) error {
	fk := s.f[fKind]
	if fk.lo != fk.hi {
		return &argError{err: ErrMismatch, from: -1, text: fmt.Sprintf("collectives: %s: ranks called different collectives: rank %d called %s, rank %d called %s: %v",
			k, fk.loRank, kind(fk.lo), fk.hiRank, kind(fk.hi), ErrMismatch)}
	}
	if ft := s.f[fType]; ft.lo != ft.hi {
		return &argError{err: ErrMismatch, from: -1, text: fmt.Sprintf("collectives: %s: ranks passed different element types: rank %d and rank %d disagree (this rank: %s): %v",
			k, ft.loRank, ft.hiRank, elem, ErrMismatch)}
	}
	if s.errRank >= 0 {
		if int(s.errRank) == rank && local != nil {
			return local
		}
		return &argError{text: s.errText, from: int(s.errRank), err: sentinel(s.errCode)}
	}
	if fr := s.f[fRoot]; fr.lo != fr.hi {
		return &argError{err: ErrMismatch, from: -1, text: fmt.Sprintf("collectives: %s: ranks passed different roots: rank %d passed %d, rank %d passed %d: %v",
			k, fr.loRank, fr.lo, fr.hiRank, fr.hi, ErrMismatch)}
	}
	if fl := s.f[fLen]; fl.lo != fl.hi {
		return &argError{err: ErrMismatch, from: -1, text: fmt.Sprintf("collectives: %s: ranks passed different lengths: len(data) is %d on rank %d, %d on rank %d: %v",
			k, fl.lo, fl.loRank, fl.hi, fl.hiRank, ErrMismatch)}
	}
	return nil
}

// The header in front of every first-phase message.
const (
	magic      = 0xC7
	hdrFixed   = 8 // magic, kind, flags, spare, seq
	statusSize = nFields*24 + 8 + 4 + 1 + 2
	maxErrText = 1 << 10
	hdrAlign   = 16
	// flagData says that a payload follows the header.
	flagData = 1
)

// appendHeader appends the header of a message of call seq of collective k.
// The header is padded to a multiple of hdrAlign bytes, so that a payload
// of numbers after it is aligned as in its own memory.
func appendHeader(b []byte, k kind, flags uint8, seq uint32, s *status) []byte {
	start := len(b)
	b = append(b, magic, byte(k), flags, 0)
	b = binary.LittleEndian.AppendUint32(b, seq)
	for _, x := range s.f {
		b = binary.LittleEndian.AppendUint64(b, uint64(x.lo))
		b = binary.LittleEndian.AppendUint64(b, uint64(x.hi))
		b = binary.LittleEndian.AppendUint32(b, uint32(x.loRank))
		b = binary.LittleEndian.AppendUint32(b, uint32(x.hiRank))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(s.info))
	b = binary.LittleEndian.AppendUint32(b, uint32(s.errRank))
	text := s.errText
	if len(text) > maxErrText {
		text = text[:maxErrText]
	}
	b = append(b, s.errCode)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(text)))
	b = append(b, text...)
	for (len(b)-start)%hdrAlign != 0 {
		b = append(b, 0)
	}
	return b
}

// parseHeader decodes a header and returns the payload after it.
func parseHeader(b []byte) (k kind, flags uint8, seq uint32, s *status, payload []byte, err error) {
	if len(b) < hdrFixed+statusSize || b[0] != magic {
		return 0, 0, 0, nil, nil, fmt.Errorf("malformed collective message (%d bytes)", len(b))
	}
	k, flags, seq = kind(b[1]), b[2], binary.LittleEndian.Uint32(b[4:])
	p := b[hdrFixed:]
	s = &status{}
	for i := range s.f {
		s.f[i] = extremes{
			lo:     int64(binary.LittleEndian.Uint64(p)),
			hi:     int64(binary.LittleEndian.Uint64(p[8:])),
			loRank: int32(binary.LittleEndian.Uint32(p[16:])),
			hiRank: int32(binary.LittleEndian.Uint32(p[20:])),
		}
		p = p[24:]
	}
	s.info = int64(binary.LittleEndian.Uint64(p))
	s.errRank = int32(binary.LittleEndian.Uint32(p[8:]))
	s.errCode = p[12]
	n := int(binary.LittleEndian.Uint16(p[13:]))
	p = p[15:]
	if len(p) < n {
		return 0, 0, 0, nil, nil, fmt.Errorf("malformed collective message: error text of %d bytes in %d", n, len(p))
	}
	s.errText = string(p[:n])
	used := hdrFixed + statusSize + n
	pad := (hdrAlign - used%hdrAlign) % hdrAlign
	if len(p) < n+pad {
		return 0, 0, 0, nil, nil, fmt.Errorf("malformed collective message: header padding missing")
	}
	return k, flags, seq, s, p[n+pad:], nil
}
