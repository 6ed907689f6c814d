package mpi

import (
	"context"
	"fmt"
	"unsafe"
)

// Number is every integer, floating-point and complex kind: the element
// types that travel as raw little-endian bytes.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64 | ~complex64 | ~complex128
}

// littleEndian is true on hosts that store numbers least significant byte
// first, where a []T is already its own wire format.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// AsBytes returns the little-endian bytes of s. On little-endian hosts (all
// that Go supports but a few) it is s's own memory, without a copy: do not
// change s while the bytes are in use. Elsewhere it is a converted copy.
func AsBytes[T Number](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	size := int(unsafe.Sizeof(s[0]))
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*size)
	if littleEndian {
		return b
	}
	c := append([]byte(nil), b...)
	swapWords(c, wordSize[T]())
	return c
}

// FromBytes returns the numbers whose little-endian bytes are b. It uses b's
// memory when it can (little-endian host, b suitably aligned), so b must not
// be used afterwards; otherwise it copies. It returns an error wrapping
// ErrTruncate when len(b) is not a multiple of the element size.
func FromBytes[T Number](b []byte) ([]T, error) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b)%size != 0 {
		return nil, errorf("mpi: %d bytes into %T elements of %d bytes: %w", len(b), zero, size, ErrTruncate)
	}
	n := len(b) / size
	if n == 0 {
		return []T{}, nil
	}
	if littleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%unsafe.Alignof(zero) == 0 {
		return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
	}
	s := make([]T, n)
	d := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(b))
	copy(d, b)
	if !littleEndian {
		swapWords(d, wordSize[T]())
	}
	return s, nil
}

// wordSize is the size of T's byte-order unit: the element, or half of it
// for complex numbers.
func wordSize[T Number]() int {
	var zero T
	switch any(zero).(type) {
	case complex64, complex128:
		return int(unsafe.Sizeof(zero)) / 2
	}
	// Named complex types (~complex) are rare; treat them by their kind.
	if s := fmt.Sprintf("%v", zero); len(s) > 0 && s[0] == '(' {
		return int(unsafe.Sizeof(zero)) / 2
	}
	return int(unsafe.Sizeof(zero))
}

// swapWords reverses the bytes of every w-byte word of b.
func swapWords(b []byte, w int) {
	for i := 0; i+w <= len(b); i += w {
		for l, r := i, i+w-1; l < r; l, r = l+1, r-1 {
			b[l], b[r] = b[r], b[l]
		}
	}
}

// SendSlice sends data's elements as raw little-endian bytes, with no
// per-element work on little-endian hosts. It blocks like Send.
func SendSlice[T Number](ctx context.Context, c *Comm, dst, tag int, data []T) error {
	return c.Send(ctx, dst, tag, AsBytes(data))
}

// RecvSlice receives a message sent by SendSlice with the same element type.
// Status.Count is in bytes. A message whose length is not a whole number of
// elements is an error wrapping ErrTruncate.
func RecvSlice[T Number](ctx context.Context, c *Comm, src, tag int) ([]T, Status, error) {
	b, st, err := c.Recv(ctx, src, tag)
	if err != nil {
		return nil, st, err
	}
	s, err := FromBytes[T](b)
	return s, st, err
}
