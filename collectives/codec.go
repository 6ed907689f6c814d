package collectives

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"hash/fnv"
	"reflect"
	"sync"
	"unsafe"
)

// littleEndian is true on hosts that store numbers least significant byte
// first: there a []T of numbers is its own wire format, and is sent and
// received without a per-element loop. Other hosts convert (swapWords).
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// elemInfo is what a collective needs to know about its element type,
// worked out once per type.
type elemInfo struct {
	raw  bool   // a number kind: raw little-endian bytes; otherwise gob
	size int    // bytes per element when raw
	word int    // byte-order unit when raw: size, or size/2 for complex kinds
	id   int64  // hash of the type's name and size, compared across ranks
	name string // the type's name, for error messages
}

var elemInfos sync.Map // reflect.Type -> *elemInfo; grows with the program's types only

// infoOf returns T's elemInfo.
func infoOf[T any]() *elemInfo {
	t := reflect.TypeFor[T]()
	if v, ok := elemInfos.Load(t); ok {
		return v.(*elemInfo)
	}
	in := &elemInfo{name: t.String(), size: int(t.Size())}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		in.raw, in.word = true, in.size
	case reflect.Complex64, reflect.Complex128:
		in.raw, in.word = true, in.size/2
	default:
		in.raw, in.word = plainStruct(t), in.size // see plain.go
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d/%t", in.name, in.size, in.raw)
	in.id = int64(h.Sum64() >> 1)
	v, _ := elemInfos.LoadOrStore(t, in)
	return v.(*elemInfo)
}

// rawBytes returns the memory of a []T of a number kind as bytes, without a
// copy. Only for raw element types.
func rawBytes[T any](xs []T) []byte {
	if len(xs) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xs))), len(xs)*int(unsafe.Sizeof(xs[0])))
}

// encode returns the wire form of xs: for numbers on a little-endian host,
// xs's own memory (which must not change while the bytes are in use); a
// converted copy on other hosts; a gob stream for other types.
func encode[T any](in *elemInfo, xs []T) (b []byte, err error) {
	if in.raw {
		b := rawBytes(xs)
		if !littleEndian {
			b = bytes.Clone(b)
			swapWords(b, in.word)
		}
		return b, nil
	}
	defer recoverCodec(&err, "encoding", in.name)
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(xs); err != nil {
		return nil, fmt.Errorf("encoding []%s with encoding/gob: %w", in.name, err)
	}
	return buf.Bytes(), nil
}

// decode returns the elements whose wire form is b, in memory of its own
// (never b's).
func decode[T any](in *elemInfo, b []byte) (_ []T, err error) {
	if in.raw {
		if len(b)%in.size != 0 {
			return nil, fmt.Errorf("%d bytes are not a whole number of %d-byte %s elements", len(b), in.size, in.name)
		}
		xs := make([]T, len(b)/in.size)
		decodeInto(in, xs, b)
		return xs, nil
	}
	defer recoverCodec(&err, "decoding", in.name)
	var xs []T
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&xs); err != nil {
		return nil, fmt.Errorf("decoding []%s with encoding/gob: %w", in.name, err)
	}
	if xs == nil {
		xs = []T{}
	}
	return xs, nil
}

// recoverCodec turns a panic of a GobEncode or GobDecode method (a bug in
// the element type, which gob does not catch) into the call's error, so
// that the call fails on every rank as for an element gob cannot encode,
// instead of leaving the other ranks waiting.
func recoverCodec(err *error, doing, name string) {
	if v := recover(); v != nil {
		*err = fmt.Errorf("%s []%s with encoding/gob: a method of the type panicked: %v", doing, name, v)
	}
}

// decodeInto copies the wire form b of len(dst) raw elements into dst.
func decodeInto[T any](in *elemInfo, dst []T, b []byte) {
	d := rawBytes(dst)
	copy(d, b)
	if !littleEndian {
		swapWords(d[:len(b)], in.word)
	}
}

// swapWords reverses the bytes of every w-byte word of b: the portable path
// for big-endian hosts.
func swapWords(b []byte, w int) {
	for i := 0; i+w <= len(b); i += w {
		for l, r := i, i+w-1; l < r; l, r = l+1, r-1 {
			b[l], b[r] = b[r], b[l]
		}
	}
}

// fromWire turns raw elements received straight into their memory (b) from
// wire order into this host's: nothing to do on little-endian hosts.
func fromWire(in *elemInfo, b []byte) {
	if !littleEndian {
		swapWords(b, in.word)
	}
}

// viewRaw returns b as raw elements without a copy, when the host is
// little-endian, b holds whole elements and is aligned for them; ok is false
// otherwise, and the caller decodes. b must be memory nothing else uses.
func viewRaw[T any](in *elemInfo, b []byte) (xs []T, ok bool) {
	var zero T
	if !in.raw || !littleEndian || len(b)%in.size != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%unsafe.Alignof(zero) != 0 {
		return nil, false
	}
	if len(b) == 0 {
		return []T{}, true
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/in.size), true
}
