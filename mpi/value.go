package mpi

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"reflect"
	"sync"
	"unsafe"
)

// Typed point-to-point: SendValue and RecvValue carry one Go value of any
// type, so that a struct (or a slice, a map, a number) can be sent without
// hand-written encoding. The wire form depends on the type alone:
//
//   - a number (any integer, float or complex kind): its raw little-endian
//     bytes;
//   - a slice of numbers: the raw little-endian bytes of its elements, one
//     after the other (as SendSlice sends them);
//   - a string: its bytes;
//   - anything else: an encoding/gob stream of the value.
//
// AppendValue and DecodeValue are the same encoding without the sending, for
// code (such as package pool) that puts a value into a message of its own.

// valueForm is how a type travels.
type valueForm uint8

const (
	formGob    valueForm = iota // encoding/gob
	formNumber                  // one number, raw
	formSlice                   // a slice of numbers, raw
	formString                  // a string's bytes
)

// valueInfo is what AppendValue and DecodeValue need to know about a type,
// worked out once per type.
type valueInfo struct {
	form valueForm
	size int // bytes per number (formNumber, formSlice)
	word int // byte-order unit: size, or size/2 for complex kinds
	typ  reflect.Type
}

var valueInfos sync.Map // reflect.Type -> *valueInfo; grows with the program's types only

// numberKind returns the size and byte-order unit of k when it is a number
// kind, and ok false otherwise.
func numberKind(t reflect.Type) (size, word int, ok bool) {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return int(t.Size()), int(t.Size()), true
	case reflect.Complex64, reflect.Complex128:
		return int(t.Size()), int(t.Size()) / 2, true
	}
	return 0, 0, false
}

func valueInfoOf[T any]() *valueInfo {
	t := reflect.TypeFor[T]()
	if v, ok := valueInfos.Load(t); ok {
		return v.(*valueInfo)
	}
	in := &valueInfo{typ: t}
	if size, word, ok := numberKind(t); ok {
		in.form, in.size, in.word = formNumber, size, word
	} else if t.Kind() == reflect.Slice {
		if size, word, ok := numberKind(t.Elem()); ok {
			in.form, in.size, in.word = formSlice, size, word
		}
	} else if t.Kind() == reflect.String {
		in.form = formString
	}
	v, _ := valueInfos.LoadOrStore(t, in)
	return v.(*valueInfo)
}

// rawOf returns the memory of a number or a slice of numbers, without a
// copy.
func rawOf[T any](in *valueInfo, v *T) []byte {
	if in.form == formNumber {
		return unsafe.Slice((*byte)(unsafe.Pointer(v)), in.size)
	}
	// A slice of any element type has the layout of a []byte whose length
	// counts elements.
	s := *(*[]byte)(unsafe.Pointer(v))
	if len(s) == 0 {
		return []byte{}
	}
	return unsafe.Slice(unsafe.SliceData(s), len(s)*in.size)
}

// AppendValue appends the wire form of v (see SendValue) to b and returns
// the extended slice. It fails only for a value encoding/gob cannot encode
// (a channel, a func, an interface holding an unregistered type), with
// gob's error.
func AppendValue[T any](b []byte, v T) ([]byte, error) {
	in := valueInfoOf[T]()
	switch in.form {
	case formNumber, formSlice:
		n := len(b)
		b = append(b, rawOf(in, &v)...)
		if !littleEndian {
			swapWords(b[n:], in.word)
		}
		return b, nil
	case formString:
		return append(b, *(*string)(unsafe.Pointer(&v))...), nil
	}
	buf := bytes.NewBuffer(b)
	if err := gob.NewEncoder(buf).Encode(&v); err != nil {
		return b, fmt.Errorf("mpi: encoding a %s with encoding/gob: %w", in.typ, err)
	}
	return buf.Bytes(), nil
}

// DecodeValue returns the value whose wire form (see SendValue) is b, in
// memory of its own (never b's). A number needs exactly its size in bytes
// and a slice of numbers a whole number of elements, else the error wraps
// ErrTruncate; a gob stream that does not decode into a T is gob's error.
// An empty slice of numbers decodes as an empty, non-nil slice.
func DecodeValue[T any](b []byte) (T, error) {
	return decodeValue[T](b, false)
}

// decodeValue is DecodeValue; with own, a slice of numbers may use b's
// memory (when aligned on a little-endian host), as b belongs to the
// caller.
func decodeValue[T any](b []byte, own bool) (T, error) {
	var v T
	in := valueInfoOf[T]()
	switch in.form {
	case formNumber:
		if len(b) != in.size {
			return v, errorf("mpi: %d bytes for a %s of %d bytes: %w", len(b), in.typ, in.size, ErrTruncate)
		}
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), in.size), b)
		if !littleEndian {
			swapWords(unsafe.Slice((*byte)(unsafe.Pointer(&v)), in.size), in.word)
		}
		return v, nil
	case formSlice:
		if len(b)%in.size != 0 {
			return v, errorf("mpi: %d bytes for a %s: not a whole number of %d-byte elements: %w", len(b), in.typ, in.size, ErrTruncate)
		}
		n := len(b) / in.size
		if own && littleEndian && n > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%uintptr(in.typ.Elem().Align()) == 0 {
			s := b[:n:n] // the header of a slice of n elements at b's memory
			*(*[]byte)(unsafe.Pointer(&v)) = s
			return v, nil
		}
		v = reflect.MakeSlice(in.typ, n, n).Interface().(T)
		d := rawOf(in, &v)
		copy(d, b)
		if !littleEndian {
			swapWords(d, in.word)
		}
		return v, nil
	case formString:
		*(*string)(unsafe.Pointer(&v)) = string(b)
		return v, nil
	}
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return v, fmt.Errorf("mpi: decoding a %s with encoding/gob: %w", in.typ, err)
	}
	return v, nil
}

// SendValue sends v to rank dst with tag, and blocks like Send. A number or
// a slice of numbers travels as raw little-endian bytes (a slice without a
// copy on little-endian hosts), a string as its bytes, and any other type as
// an encoding/gob stream (so exported struct fields only, as gob does).
// Receive it with RecvValue of the same type. Errors are Send's, or gob's
// for a value it cannot encode.
func SendValue[T any](ctx context.Context, c *Comm, dst, tag int, v T) error {
	in := valueInfoOf[T]()
	if in.form == formSlice && littleEndian {
		return c.Send(ctx, dst, tag, rawOf(in, &v))
	}
	b, err := AppendValue(nil, v)
	if err != nil {
		return err
	}
	return c.Send(ctx, dst, tag, b)
}

// RecvValue receives a message sent with SendValue of the same type T from
// rank src (or AnySource) with tag (or AnyTag), and blocks like Recv.
// Status.Count is the message's size in bytes. A zero-length message (an
// empty Send, a stop signal that carries nothing) is T's zero value with
// Count 0, whatever T is (an empty, non-nil slice for a slice of numbers).
// Any other message that is not a T's wire form is an error (wrapping
// ErrTruncate for a number or a slice of numbers of the wrong length), and
// the message is consumed.
func RecvValue[T any](ctx context.Context, c *Comm, src, tag int) (T, Status, error) {
	b, st, err := c.Recv(ctx, src, tag)
	if err != nil {
		var zero T
		return zero, st, err
	}
	if len(b) == 0 && valueInfoOf[T]().form != formSlice {
		var zero T // an empty message: the zero value, for numbers and gob types too
		return zero, st, nil
	}
	v, err := decodeValue[T](b, true)
	if err != nil {
		return v, st, errorf("mpi: recv value from rank %d, tag %d: %w", st.Source, st.Tag, err)
	}
	return v, st, nil
}
