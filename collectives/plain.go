package collectives

import (
	"encoding"
	"encoding/gob"
	"reflect"
)

// Fixed-size element types. A struct or array made only of numbers and
// bools (such as Loc[float64]), with no pointer, string, slice, map,
// channel, func or interface anywhere in it, and whose struct fields are
// all exported (as gob would see them: a struct with an unexported field
// still goes through gob, which refuses or drops it), is its own wire format on a
// little-endian host, unless it or a type in it has an encoding method of
// its own (GobEncode, MarshalBinary), which gob then calls: every collective
// sends a []T of it as the slice's
// raw memory, padding included, and receives it straight into a []T,
// without encoding/gob. Its size and name are in the element type's hash
// that the ranks compare, so ranks that lay it out differently (a 32-bit
// int) fail with ErrMismatch rather than misread it. On big-endian hosts
// such types go through gob, as every other type does.

// plainStruct reports whether t is a struct or array that travels as raw
// memory.
func plainStruct(t reflect.Type) bool {
	if !littleEndian || t.Size() == 0 {
		return false
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Array:
		return plainType(t)
	}
	return false
}

// plainType reports whether t holds numbers and bools only, in exported
// fields, with no encoding method of its own anywhere.
func plainType(t reflect.Type) bool {
	if encodesItself(t) {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return plainType(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); !f.IsExported() || !plainType(f.Type) {
				return false
			}
		}
		return true
	}
	return false
}

var (
	gobEncoder      = reflect.TypeFor[gob.GobEncoder]()
	binaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// encodesItself reports whether t (or *t) has a method gob encodes it with.
func encodesItself(t reflect.Type) bool {
	for _, m := range []reflect.Type{gobEncoder, binaryMarshaler} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}
