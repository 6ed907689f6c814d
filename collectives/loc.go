package collectives

// Loc is a value with the index it came from, for the reductions MPI calls
// MINLOC and MAXLOC: reduce a []Loc[T] with ReduceFunc or AllreduceFunc and
// MinLoc or MaxLoc to find, element by element, the extreme value over the
// ranks and where it is (a rank, or a global index). A Loc is one element:
// the reductions never separate Val from its Index. Loc of a number type
// travels as raw memory, not through encoding/gob (see plainStruct).
//
// Loc is the right tool where an Op over interleaved (value, index) pairs
// of one number type is wrong: an Op is element-wise, and the algorithms
// may cut a []T anywhere, pairs included.
type Loc[T Real] struct {
	Val   T
	Index int
}

// MinLoc is the reduction acc[i] = the one of acc[i] and in[i] with the
// smaller Val; with equal Vals, the one with the smaller Index. It is
// associative and commutative, so the result does not depend on the number
// of ranks. A NaN Val never wins over a number (it compares false).
func MinLoc[T Real](acc, in []Loc[T]) {
	in = in[:len(acc)]
	for i := range acc {
		a, b := acc[i], in[i]
		if b.Val < a.Val || (b.Val == a.Val && b.Index < a.Index) || (a.Val != a.Val && b.Val == b.Val) {
			acc[i] = b
		}
	}
}

// MaxLoc is the reduction acc[i] = the one of acc[i] and in[i] with the
// larger Val; with equal Vals, the one with the smaller Index. A NaN Val
// never wins over a number.
func MaxLoc[T Real](acc, in []Loc[T]) {
	in = in[:len(acc)]
	for i := range acc {
		a, b := acc[i], in[i]
		if b.Val > a.Val || (b.Val == a.Val && b.Index < a.Index) || (a.Val != a.Val && b.Val == b.Val) {
			acc[i] = b
		}
	}
}
