package collectives

import "github.com/gorun-hpc/gorun/mpi"

// Op combines the contributions of two ranks element-wise: for every i it
// sets acc[i] to acc[i] op in[i]. acc and in have the same length. An Op
// must be associative and commutative: the algorithms combine contributions
// in an order that depends on the number of ranks and the message size
// (although every rank of an Allreduce gets bit-for-bit the same result).
// It must not keep acc or in after it returns.
//
// Element-wise means that acc[i] may depend on acc[i] and in[i] only: the
// algorithms cut a []T into blocks wherever suits them, and hand an Op any
// part of it. An Op over interleaved pairs (a MINLOC written over
// []float64{v0, i0, v1, i1, ...}) is wrong, and silently so: a block may
// start at an index. For elements of several values use ReduceFunc or
// AllreduceFunc, which never split an element, with Loc and MinLoc or
// MaxLoc, or a struct type and a func of your own.
//
// The predefined Ops are generic functions, so that
//
//	collectives.Allreduce(ctx, comm, xs, collectives.Sum)
//
// picks Sum[float64] for xs of type []float64.
type Op[T mpi.Number] func(acc, in []T)

// Real is every integer and floating-point kind: the numbers that Min and
// Max can order.
type Real interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64
}

// Sum is the Op acc[i] += in[i].
func Sum[T mpi.Number](acc, in []T) {
	in = in[:len(acc)]
	for i := range acc {
		acc[i] += in[i]
	}
}

// Prod is the Op acc[i] *= in[i].
func Prod[T mpi.Number](acc, in []T) {
	in = in[:len(acc)]
	for i := range acc {
		acc[i] *= in[i]
	}
}

// Min is the Op acc[i] = min(acc[i], in[i]), for integers and floats. A NaN
// on any rank gives NaN, as with the builtin min.
func Min[T Real](acc, in []T) {
	in = in[:len(acc)]
	for i := range acc {
		acc[i] = min(acc[i], in[i])
	}
}

// Max is the Op acc[i] = max(acc[i], in[i]), for integers and floats. A NaN
// on any rank gives NaN, as with the builtin max.
func Max[T Real](acc, in []T) {
	in = in[:len(acc)]
	for i := range acc {
		acc[i] = max(acc[i], in[i])
	}
}
