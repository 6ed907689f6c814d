package collectives

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// vcount is how many elements rank src gives rank dst in the v tests:
// zero for some pairs, up to 3 (or, with big, thousands: past the 16 KiB
// that go with the check).
func vcount(src, dst int, big bool) int {
	k := (src*2 + dst*3) % 4
	if big {
		k *= 3000
	}
	return k
}

func vval(src, dst, i int) int { return src*1_000_000 + dst*10_000 + i }

// TestAlltoallv: at n = 1..5, each rank sends rank j vcount elements, some
// none; what arrives, and the counts, equal the serial reference; also for
// a gob type (strings) and for blocks past 16 KiB.
func TestAlltoallv(t *testing.T) {
	for n := 1; n <= 5; n++ {
		for _, big := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/big=%t", n, big), func(t *testing.T) {
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					me := c.Rank()
					var data []int
					var strs []string
					counts := make([]int, n)
					for j := range n {
						counts[j] = vcount(me, j, big)
						for i := range counts[j] {
							data = append(data, vval(me, j, i))
							strs = append(strs, fmt.Sprint(vval(me, j, i)))
						}
					}
					var want []int
					var wantStrs []string
					wantCounts := make([]int, n)
					for src := range n {
						wantCounts[src] = vcount(src, me, big)
						for i := range wantCounts[src] {
							want = append(want, vval(src, me, i))
							wantStrs = append(wantStrs, fmt.Sprint(vval(src, me, i)))
						}
					}
					got, gotCounts, err := Alltoallv(ctx, c, data, counts)
					if err != nil {
						return err
					}
					if !slices.Equal(got, want) || !slices.Equal(gotCounts, wantCounts) {
						return fmt.Errorf("got %d elements %v, want %d %v", len(got), gotCounts, len(want), wantCounts)
					}
					gs, gsCounts, err := Alltoallv(ctx, c, strs, counts)
					if err != nil {
						return err
					}
					if !slices.Equal(gs, wantStrs) || !slices.Equal(gsCounts, wantCounts) {
						return fmt.Errorf("strings: got %d %v, want %d %v", len(gs), gsCounts, len(wantStrs), wantCounts)
					}
					return nil
				})
			})
		}
	}
}

// TestGatherv: at n = 1..5, every root gets every rank's data (rank r has
// r%3 elements, or thousands with big) in rank order and the counts; the
// other ranks get nil.
func TestGatherv(t *testing.T) {
	for n := 1; n <= 5; n++ {
		for _, big := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/big=%t", n, big), func(t *testing.T) {
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					for root := range n {
						data, want, wantCounts := vgatherData(c.Rank(), n, big)
						got, counts, err := Gatherv(ctx, c, root, data)
						if err != nil {
							return err
						}
						if c.Rank() != root {
							if got != nil || counts != nil {
								return fmt.Errorf("root %d: non-root got %d elements, counts %v", root, len(got), counts)
							}
							continue
						}
						if !slices.Equal(got, want) || !slices.Equal(counts, wantCounts) {
							return fmt.Errorf("root %d: got %d elements %v, want %d %v", root, len(got), counts, len(want), wantCounts)
						}
					}
					return nil
				})
			})
		}
	}
}

// vgatherData returns rank me's data for the gather tests, and the
// concatenation and counts every rank's data makes.
func vgatherData(me, n int, big bool) (data, all, counts []int) {
	counts = make([]int, n)
	for r := range n {
		counts[r] = r % 3
		if big {
			counts[r] *= 5000
		}
		for i := range counts[r] {
			all = append(all, vval(r, 0, i))
		}
	}
	o := offsets(counts)
	return all[o[me]:o[me+1]], all, counts
}

// TestAllgatherv: at n = 1..5, every rank gets every rank's data in rank
// order and the counts.
func TestAllgatherv(t *testing.T) {
	for n := 1; n <= 5; n++ {
		for _, big := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/big=%t", n, big), func(t *testing.T) {
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					data, want, wantCounts := vgatherData(c.Rank(), n, big)
					got, counts, err := Allgatherv(ctx, c, data)
					if err != nil {
						return err
					}
					if !slices.Equal(got, want) || !slices.Equal(counts, wantCounts) {
						return fmt.Errorf("got %d elements %v, want %d %v", len(got), counts, len(want), wantCounts)
					}
					return nil
				})
			})
		}
	}
}

// rsData is rank r's data of length l in the reduce-scatter tests.
func rsData(r, l int) []int64 {
	xs := make([]int64, l)
	for i := range xs {
		xs[i] = int64((r+1)*(i+3)%17 - 8)
	}
	return xs
}

// rsWant is the serial reduction of every rank's rsData with Sum and Max.
func rsWant(n, l int) (sum, mx []int64) {
	sum, mx = rsData(0, l), rsData(0, l)
	for r := 1; r < n; r++ {
		d := rsData(r, l)
		Sum(sum, d)
		Max(mx, d)
	}
	return sum, mx
}

// TestReduceScatterBlock: at n = 1..5, with k = 0, 3 and 5000 elements a
// block, rank i gets block i of the Sum and of the Max.
func TestReduceScatterBlock(t *testing.T) {
	for n := 1; n <= 5; n++ {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				for _, k := range []int{0, 3, 5000} {
					sum, mx := rsWant(n, k*n)
					lo, hi := k*c.Rank(), k*(c.Rank()+1)
					data := rsData(c.Rank(), k*n)
					got, err := ReduceScatterBlock(ctx, c, data, Sum)
					if err != nil {
						return err
					}
					if !slices.Equal(got, sum[lo:hi]) {
						return fmt.Errorf("k=%d: Sum block %v..., want %v...", k, got[:min(3, k)], sum[lo:lo+min(3, k)])
					}
					got, err = ReduceScatterBlock(ctx, c, data, Max)
					if err != nil {
						return err
					}
					if !slices.Equal(got, mx[lo:hi]) {
						return fmt.Errorf("k=%d: Max block differs", k)
					}
					if !slices.Equal(data, rsData(c.Rank(), k*n)) {
						return fmt.Errorf("k=%d: data changed", k)
					}
				}
				return nil
			})
		})
	}
}

// TestReduceScatter: at n = 1..5, with uneven counts (some zero), rank i
// gets its counts[i] elements of the Sum.
func TestReduceScatter(t *testing.T) {
	for n := 1; n <= 5; n++ {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				for _, scale := range []int{1, 4000} {
					counts := make([]int, n)
					for i := range counts {
						counts[i] = (i * 2 % 3) * scale
					}
					o := offsets(counts)
					sum, _ := rsWant(n, o[n])
					got, err := ReduceScatter(ctx, c, rsData(c.Rank(), o[n]), counts, Sum)
					if err != nil {
						return err
					}
					if want := sum[o[c.Rank()]:o[c.Rank()+1]]; !slices.Equal(got, want) {
						return fmt.Errorf("scale %d: got %d elements, want %d, or they differ", scale, len(got), len(want))
					}
				}
				return nil
			})
		})
	}
}

// locData is rank r's data of l pairs, of n ranks, in the MinLoc/MaxLoc
// tests: values from a small range, so that ties are frequent, and
// distinct indexes.
func locData(r, n, l int) []Loc[float64] {
	rng := rand.New(rand.NewPCG(uint64(r), uint64(l)))
	xs := make([]Loc[float64], l)
	for i := range xs {
		// Index order differs from rank order for most i, so that the
		// tie rule, not the order of combination, must pick the winner.
		xs[i] = Loc[float64]{Val: float64(rng.IntN(7)) - 3, Index: (r+i)%n*l + i}
	}
	return xs
}

// serialLoc is the serial reference: for each i, the smallest (or
// largest) Val over the ranks, and among those the smallest Index, found
// by a plain loop over the ranks.
func serialLoc(n, l int, less bool) []Loc[float64] {
	all := make([][]Loc[float64], n)
	for r := range all {
		all[r] = locData(r, n, l)
	}
	out := make([]Loc[float64], l)
	for i := range out {
		best := all[0][i]
		for r := 1; r < n; r++ {
			x := all[r][i]
			better := x.Val < best.Val
			if !less {
				better = x.Val > best.Val
			}
			if better || (x.Val == best.Val && x.Index < best.Index) {
				best = x
			}
		}
		out[i] = best
	}
	return out
}

// TestLocAllreduceFunc is the acceptance case: MinLoc and MaxLoc through
// AllreduceFunc over 10^5 pairs (1.6 MB a rank) at n = 1..9 equal the
// serial reference on every rank (about 2 s at n = 9, race-built, on 2
// cores). Breaking the tie rule of either makes it fail.
func TestLocAllreduceFunc(t *testing.T) {
	for n := 1; n <= 9; n++ {
		l := 100_000
		t.Run(fmt.Sprintf("n=%d/pairs=%d", n, l), func(t *testing.T) {
			wantMin, wantMax := serialLoc(n, l, true), serialLoc(n, l, false)
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				data := locData(c.Rank(), n, l)
				got, err := AllreduceFunc(ctx, c, data, MinLoc)
				if err != nil {
					return err
				}
				if i := firstDiff(got, wantMin); i >= 0 {
					return fmt.Errorf("MinLoc: pair %d is %v, want %v", i, at(got, i), wantMin[i])
				}
				got, err = AllreduceFunc(ctx, c, data, MaxLoc)
				if err != nil {
					return err
				}
				if i := firstDiff(got, wantMax); i >= 0 {
					return fmt.Errorf("MaxLoc: pair %d is %v, want %v", i, at(got, i), wantMax[i])
				}
				return nil
			})
		})
	}
}

func firstDiff[T comparable](a, b []T) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

func at[T any](xs []T, i int) any {
	if i < len(xs) {
		return xs[i]
	}
	return "nothing"
}

// TestReduceFunc: at n = 1..5 and every root, MinLoc through ReduceFunc
// equals the serial reference on root, nil elsewhere; and a gob type
// (strings, concatenated: associative, not commutative) comes in rank
// order.
func TestReduceFunc(t *testing.T) {
	concat := func(acc, in []string) {
		for i := range acc {
			acc[i] += in[i]
		}
	}
	for n := 1; n <= 5; n++ {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			want := serialLoc(n, 3000, true)
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				for root := range n {
					got, err := ReduceFunc(ctx, c, root, locData(c.Rank(), n, 3000), MinLoc)
					if err != nil {
						return err
					}
					if c.Rank() != root {
						if got != nil {
							return fmt.Errorf("root %d: non-root got %d pairs", root, len(got))
						}
					} else if i := firstDiff(got, want); i >= 0 {
						return fmt.Errorf("root %d: pair %d is %v, want %v", root, i, at(got, i), want[i])
					}
					s, err := ReduceFunc(ctx, c, root, []string{fmt.Sprint(c.Rank()), "x"}, concat)
					if err != nil {
						return err
					}
					wantS := ""
					for r := range n {
						wantS += fmt.Sprint(mod(r+root, n))
					}
					if c.Rank() == root && (len(s) != 2 || s[0] != wantS || s[1] != strings.Repeat("x", n)) {
						return fmt.Errorf("root %d: strings %q, want [%q %q]", root, s, wantS, strings.Repeat("x", n))
					}
				}
				return nil
			})
		})
	}
}

// TestPlainStructRaw: a struct of numbers (Loc[float64], and one with
// padding and an array) travels as raw memory, not gob; a struct with a
// string, a pointer or an unexported field does not. Broken by making plainStruct return false,
// it fails; and a raw struct round-trips through Bcast and Allgatherv.
func TestPlainStructRaw(t *testing.T) {
	type padded struct {
		A int8
		B [3]float32
		C bool
	}
	type named struct {
		Name string
		N    int
	}
	type ptr struct{ P *int }
	type hidden struct{ x int }
	if !littleEndian {
		t.Skip("big-endian host: structs go through gob")
	}
	if !infoOf[Loc[float64]]().raw || !infoOf[padded]().raw {
		t.Errorf("Loc[float64] raw %t, padded raw %t: want both raw", infoOf[Loc[float64]]().raw, infoOf[padded]().raw)
	}
	if infoOf[named]().raw || infoOf[ptr]().raw || infoOf[hidden]().raw || infoOf[struct{}]().raw || infoOf[string]().raw {
		t.Errorf("a struct with a string, a pointer or an unexported field, the empty struct or a string would travel raw")
	}
	type holds struct{ P [2]panicky } // panicky encodes itself (GobEncode)
	if infoOf[panicky]().raw || infoOf[holds]().raw {
		t.Errorf("a struct with an encoding method of its own, or holding one, would travel raw")
	}
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		var in []padded
		if c.Rank() == 1 {
			in = []padded{{1, [3]float32{1, 2, 3}, true}, {-2, [3]float32{4, 5, 6}, false}}
		}
		got, err := Bcast(ctx, c, 1, in)
		if err != nil {
			return err
		}
		if len(got) != 2 || got[1].B[2] != 6 || !got[0].C || got[1].A != -2 {
			return fmt.Errorf("Bcast gave %+v", got)
		}
		all, counts, err := Allgatherv(ctx, c, got[:c.Rank()])
		if err != nil {
			return err
		}
		if len(all) != 3 || !slices.Equal(counts, []int{0, 1, 2}) || all[2] != got[1] {
			return fmt.Errorf("Allgatherv gave %+v %v", all, counts)
		}
		return nil
	})
}

// TestVMistakes: bad counts and mismatched calls of the new collectives
// are errors on every rank, naming what differs, well before the deadline;
// the communicator stays usable.
func TestVMistakes(t *testing.T) {
	cases := []mistake{
		{"Alltoallv/counts do not add up", 3, func(ctx context.Context, c *mpi.Comm) error {
			counts := []int{1, 1, 1}
			if c.Rank() == 2 {
				counts = []int{1, 1, 2}
			}
			_, _, err := Alltoallv(ctx, c, make([]int, 3), counts)
			return err
		}, ErrCounts, []string{"Alltoallv", "rank 2: counts add up to 4, but its data has 3 elements"}},
		{"Alltoallv/counts not one per rank", 4, func(ctx context.Context, c *mpi.Comm) error {
			_, _, err := Alltoallv(ctx, c, make([]int, 3), []int{1, 1, 1})
			return err
		}, ErrCounts, []string{"Alltoallv", "rank 0 has 3 counts for 4 ranks"}},
		{"Alltoallv/negative count", 2, func(ctx context.Context, c *mpi.Comm) error {
			_, _, err := Alltoallv(ctx, c, make([]int, 1), []int{2, -1})
			return err
		}, ErrCounts, []string{"counts[1] = -1 is negative"}},
		{"Gatherv/roots differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, _, err := Gatherv(ctx, c, c.Rank()/2, []int{c.Rank()})
			return err
		}, ErrMismatch, []string{"Gatherv", "different roots", "rank 0 passed 0", "rank 2 passed 1"}},
		{"Allgatherv/types differ", 2, func(ctx context.Context, c *mpi.Comm) error {
			if c.Rank() == 0 {
				_, _, err := Allgatherv(ctx, c, []int32{1})
				return err
			}
			_, _, err := Allgatherv(ctx, c, []int64{1})
			return err
		}, ErrMismatch, []string{"Allgatherv", "different element types"}},
		{"Allgatherv against Allgather", 2, func(ctx context.Context, c *mpi.Comm) error {
			if c.Rank() == 0 {
				_, _, err := Allgatherv(ctx, c, []int{1})
				return err
			}
			_, err := Allgather(ctx, c, []int{1})
			return err
		}, ErrMismatch, []string{"called different collectives", "Allgatherv", "Allgather"}},
		{"ReduceScatterBlock/length not a multiple", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := ReduceScatterBlock(ctx, c, make([]int, 4), Sum)
			return err
		}, ErrCounts, []string{"ReduceScatterBlock", "len(data) = 4 is not a multiple of the 3 ranks"}},
		{"ReduceScatterBlock/lengths differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := ReduceScatterBlock(ctx, c, make([]int, 3*(1+c.Rank()/2)), Sum)
			return err
		}, ErrMismatch, []string{"ReduceScatterBlock", "3 on rank 0", "6 on rank 2"}},
		{"ReduceScatter/counts differ", 4, func(ctx context.Context, c *mpi.Comm) error {
			counts := []int{1, 2, 3, 4}
			if c.Rank() == 3 {
				counts = []int{1, 3, 2, 4}
			}
			_, err := ReduceScatter(ctx, c, make([]float64, 10), counts, Sum)
			return err
		}, ErrMismatch, []string{"ReduceScatter", "different counts", "counts[1] = 2 on rank 0", "counts[1] = 3 on rank 3"}},
		{"ReduceScatter/counts do not add up", 2, func(ctx context.Context, c *mpi.Comm) error {
			_, err := ReduceScatter(ctx, c, make([]float64, 10), []int{5, 4}, Sum)
			return err
		}, ErrCounts, []string{"ReduceScatter", "counts add up to 9, but its data has 10 elements"}},
		{"AllreduceFunc/lengths differ", 5, func(ctx context.Context, c *mpi.Comm) error {
			_, err := AllreduceFunc(ctx, c, make([]Loc[float64], 10+c.Rank()/4), MinLoc)
			return err
		}, ErrMismatch, []string{"AllreduceFunc", "10 on rank 0", "11 on rank 4"}},
		{"ReduceFunc/roots differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := ReduceFunc(ctx, c, c.Rank()/2, make([]Loc[int], 2), MaxLoc)
			return err
		}, ErrMismatch, []string{"ReduceFunc", "rank 0 passed 0", "rank 2 passed 1"}},
		{"ReduceFunc/root out of range", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := ReduceFunc(ctx, c, 3, make([]Loc[int], 2), MaxLoc)
			return err
		}, mpi.ErrRank, []string{"ReduceFunc", "root 3 not in [0, 3)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mpitest.Run(t, tc.n, func(ctx context.Context, c *mpi.Comm) error {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				err := tc.call(ctx, c)
				if err == nil {
					return errors.New("no error")
				}
				if !errors.Is(err, tc.want) {
					return fmt.Errorf("error does not wrap %q: %w", tc.want, err)
				}
				for _, f := range tc.fragments {
					if !strings.Contains(err.Error(), f) {
						return fmt.Errorf("error does not say %q: %w", f, err)
					}
				}
				if c.Rank() == 0 {
					t.Logf("rank 0: %v", err)
				}
				if strings.Contains(tc.name, "against") {
					return nil
				}
				got, err := Allreduce(ctx, c, []int{1}, Sum)
				if err != nil || got[0] != c.Size() {
					return fmt.Errorf("Allreduce after the mistake: %v, %v", got, err)
				}
				return nil
			})
		})
	}
}

// TestFuncOpPanic: an op that panics on a combining rank of AllreduceFunc
// panics again there, with its own value, once the call is over; every
// other rank gets ErrOpPanicked (every result depends on the tree's root),
// none waits, and the next AllreduceFunc works. Removing the failure
// marker (sendVec sending the partial result regardless) makes the other
// ranks return a result.
func TestFuncOpPanic(t *testing.T) {
	for _, n := range []int{3, 4, 5} {
		for _, bad := range []int{0, 2} {
			if bad >= n-1 {
				continue // a leaf of the tree: its op never runs
			}
			t.Run(fmt.Sprintf("n=%d/rank%d", n, bad), func(t *testing.T) {
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					op := func(acc, in []Loc[int]) {
						if c.Rank() == bad {
							panic(fmt.Sprintf("boom on rank %d", c.Rank()))
						}
						MinLoc(acc, in)
					}
					data := []Loc[int]{{Val: c.Rank(), Index: c.Rank()}}
					var err error
					recovered := func() (v any) {
						defer func() { v = recover() }()
						_, err = AllreduceFunc(ctx, c, data, op)
						return nil
					}()
					switch {
					case c.Rank() == bad && recovered != fmt.Sprintf("boom on rank %d", bad):
						return fmt.Errorf("recovered %v, err %v; want the op's own panic", recovered, err)
					case c.Rank() != bad && !errors.Is(err, ErrOpPanicked):
						return fmt.Errorf("got %v, want an error wrapping ErrOpPanicked", err)
					}
					got, err := AllreduceFunc(ctx, c, data, MinLoc)
					if err != nil || got[0] != (Loc[int]{0, 0}) {
						return fmt.Errorf("AllreduceFunc after the panic: %v, %v", got, err)
					}
					return nil
				})
			})
		}
	}
}
