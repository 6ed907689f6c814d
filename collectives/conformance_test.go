package collectives

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// The conformance suite: every collective, on every size in sizes and every
// root, on the world and on a Split communicator, for several element types
// and lengths (small ones that travel with the checks and large ones that
// take the bulk paths), against a serial reference that each rank computes
// from the data it knows every rank passes. One world per size runs every
// case in turn.

var sizes = []int{1, 2, 3, 4, 5, 7, 8, 9}

type point struct {
	X, Y int
	Name string
}

// value is the element i of rank r's data in a case with seed: small
// integers, so that sums and products are exact in every element type and
// in any order.
func value(r, i, seed int) int { return (r*7+i*3+seed)%5 - 2 }

func gen[T any](f func(int) T, r, n, seed int) []T {
	xs := make([]T, n)
	// value has period 5 in i: five calls of f, then copies that double.
	for i := range min(n, 5) {
		xs[i] = f(value(r, i, seed))
	}
	for done := min(n, 5); done < n; done *= 2 {
		copy(xs[done:], xs[:done])
	}
	return xs
}

// equal is slices.Equal, by their bytes first for number kinds (quicker
// under the race detector, which checks a loop's every access). Equal
// values may differ in their bytes: a product of zeros is -0 or +0 by the
// order of its factors, so a difference of bytes is checked by value.
func equal[T comparable](a, b []T) bool {
	if infoOf[T]().raw && len(a) == len(b) && bytes.Equal(rawBytes(a), rawBytes(b)) {
		return true
	}
	return slices.Equal(a, b)
}

// tcase is one check, run by every rank of a communicator.
type tcase struct {
	name string
	run  func(ctx context.Context, c *mpi.Comm) error
}

func expect[T comparable](what string, got, want []T) error {
	if want == nil && got != nil {
		return fmt.Errorf("%s: got %d elements, want nil", what, len(got))
	}
	if want != nil && got == nil {
		return fmt.Errorf("%s: got nil, want %d elements", what, len(want))
	}
	if !equal(got, want) {
		if len(got) > 20 || len(want) > 20 {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			return fmt.Errorf("%s: got %d elements, want %d; first difference at %d", what, len(got), len(want), i)
		}
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}

// anyCases are the cases of the collectives that take any element type.
// big is a length past the inline limits of Bcast and Scatter for T, and
// gbig one past Gather's; allBig adds a large Allgather.
func anyCases[T comparable](name string, f func(int) T, big, gbig int, allBig bool) []tcase {
	var cs []tcase
	for _, l := range []int{0, 1, 5, big} {
		cs = append(cs, tcase{fmt.Sprintf("Bcast/%s/len=%d", name, l), func(ctx context.Context, c *mpi.Comm) error {
			for root := range c.Size() {
				if l == big && root != c.Size()-1 {
					continue // the bulk path once per size: it costs the most
				}
				var in []T
				if c.Rank() == root {
					in = gen(f, root, l, 1)
				}
				got, err := Bcast(ctx, c, root, in)
				if err != nil {
					return err
				}
				if err := expect(fmt.Sprintf("root %d", root), got, gen(f, root, l, 1)); err != nil {
					return err
				}
			}
			return nil
		}})
	}
	for _, l := range []int{-1, 0, 10, big} { // -1: one fewer than ranks
		cs = append(cs, tcase{fmt.Sprintf("Scatter/%s/len=%d", name, l), func(ctx context.Context, c *mpi.Comm) error {
			n := l
			if n < 0 {
				n = c.Size() - 1
			}
			for root := range c.Size() {
				if l == big && root != 0 {
					continue
				}
				all := gen(f, root, n, 2)
				var in []T
				if c.Rank() == root {
					in = all
				}
				got, err := Scatter(ctx, c, root, in)
				if err != nil {
					return err
				}
				o := offsets(blockCounts(n, c.Size()))
				if err := expect(fmt.Sprintf("root %d", root), got, all[o[c.Rank()]:o[c.Rank()+1]]); err != nil {
					return err
				}
			}
			return nil
		}})
	}
	cs = append(cs, tcase{"Scatterv/" + name, func(ctx context.Context, c *mpi.Comm) error {
		for root := range c.Size() {
			counts := make([]int, c.Size())
			for r := range counts {
				counts[r] = (r*2 + root) % 4 // zeros included
			}
			all := gen(f, root, offsets(counts)[c.Size()], 3)
			var in []T
			var cin []int
			if c.Rank() == root {
				in, cin = all, counts
			}
			got, err := Scatterv(ctx, c, root, in, cin)
			if err != nil {
				return err
			}
			o := offsets(counts)
			if err := expect(fmt.Sprintf("root %d", root), got, all[o[c.Rank()]:o[c.Rank()+1]]); err != nil {
				return err
			}
		}
		return nil
	}})
	// Gather and Allgather: lengths differ by rank; in the "mixed" variant
	// odd ranks pass more than Gather's inline limit.
	for _, variant := range []string{"small", "mixed"} {
		length := func(r int) int {
			if variant == "mixed" && r%2 == 1 {
				return gbig + r
			}
			return (r + 1) % 4
		}
		cs = append(cs, tcase{fmt.Sprintf("Gather/%s/%s", name, variant), func(ctx context.Context, c *mpi.Comm) error {
			all := []T{}
			for r := range c.Size() {
				all = append(all, gen(f, r, length(r), 4)...)
			}
			for root := range c.Size() {
				if variant == "mixed" && root > 1 {
					continue
				}
				got, err := Gather(ctx, c, root, gen(f, c.Rank(), length(c.Rank()), 4))
				if err != nil {
					return err
				}
				w := all
				if c.Rank() != root {
					w = nil
				}
				if err := expect(fmt.Sprintf("root %d", root), got, w); err != nil {
					return err
				}
			}
			return nil
		}})
		if variant == "mixed" && !allBig {
			continue
		}
		cs = append(cs, tcase{fmt.Sprintf("Allgather/%s/%s", name, variant), func(ctx context.Context, c *mpi.Comm) error {
			all := []T{}
			for r := range c.Size() {
				all = append(all, gen(f, r, length(r), 5)...)
			}
			got, err := Allgather(ctx, c, gen(f, c.Rank(), length(c.Rank()), 5))
			if err != nil {
				return err
			}
			return expect("allgather", got, all)
		}})
	}
	for _, k := range []int{0, 1, 3, -1} { // -1: past the inline limit
		cs = append(cs, tcase{fmt.Sprintf("Alltoall/%s/k=%d", name, k), func(ctx context.Context, c *mpi.Comm) error {
			n, k := c.Size(), k // every rank runs this at once: a k of its own
			if k < 0 {
				if !allBig {
					return nil
				}
				k = gbig/n + 1
			}
			// Block j of rank r is gen(r*n+j).
			var in, want []T
			for j := range n {
				in = append(in, gen(f, c.Rank()*n+j, k, 6)...)
				want = append(want, gen(f, j*n+c.Rank(), k, 6)...)
			}
			got, err := Alltoall(ctx, c, in)
			if err != nil {
				return err
			}
			if want == nil {
				want = []T{}
			}
			return expect("alltoall", got, want)
		}})
	}
	return cs
}

// numberCases are the cases of the collectives that reduce. minOp and
// maxOp are nil for complex types. big and sbig, if not 0, are lengths past
// the inline limits of Reduce and Scan.
func numberCases[T mpi.Number](name string, f func(int) T, minOp, maxOp Op[T], big, sbig int) []tcase {
	ops := map[string]Op[T]{
		"sum":  Sum[T],
		"prod": Prod[T],
		// A user Op: associative and commutative, and it counts how many
		// times it is applied.
		"user": func(acc, in []T) {
			for i := range acc {
				acc[i] = acc[i] + in[i] + f(1)
			}
		},
	}
	if minOp != nil {
		ops["min"], ops["max"] = minOp, maxOp
	}
	serial := func(op Op[T], ranks, l, seed int) []T {
		acc := gen(f, 0, l, seed)
		for r := 1; r < ranks; r++ {
			op(acc, gen(f, r, l, seed))
		}
		return acc
	}
	var cs []tcase
	for _, opName := range []string{"sum", "prod", "min", "max", "user"} {
		op := ops[opName]
		if op == nil {
			continue
		}
		for _, l := range []int{0, 3, big} {
			if l == big && (big == 0 || opName != "sum" && opName != "user") {
				continue
			}
			cs = append(cs, tcase{fmt.Sprintf("Reduce/%s/%s/len=%d", name, opName, l), func(ctx context.Context, c *mpi.Comm) error {
				want := serial(op, c.Size(), l, 7)
				for root := range c.Size() {
					if l == big && root != 1%c.Size() && root != c.Size()-1 {
						continue
					}
					in := gen(f, c.Rank(), l, 7)
					got, err := Reduce(ctx, c, root, in, op)
					if err != nil {
						return err
					}
					w := want
					if c.Rank() != root {
						w = nil
					}
					if err := expect(fmt.Sprintf("root %d", root), got, w); err != nil {
						return err
					}
					if err := expect("data after Reduce", in, gen(f, c.Rank(), l, 7)); err != nil {
						return err
					}
				}
				return nil
			}})
			cs = append(cs, tcase{fmt.Sprintf("Allreduce/%s/%s/len=%d", name, opName, l), func(ctx context.Context, c *mpi.Comm) error {
				got, err := Allreduce(ctx, c, gen(f, c.Rank(), l, 8), op)
				if err != nil {
					return err
				}
				return expect("allreduce", got, serial(op, c.Size(), l, 8))
			}})
		}
		for _, l := range []int{4, sbig} {
			if l == 0 || l == sbig && opName != "user" {
				continue
			}
			cs = append(cs, tcase{fmt.Sprintf("Scan/%s/%s/len=%d", name, opName, l), func(ctx context.Context, c *mpi.Comm) error {
				got, err := Scan(ctx, c, gen(f, c.Rank(), l, 9), op)
				if err != nil {
					return err
				}
				if err := expect("scan", got, serial(op, c.Rank()+1, l, 9)); err != nil {
					return err
				}
				got, err = Exscan(ctx, c, gen(f, c.Rank(), l, 9), op)
				if err != nil {
					return err
				}
				var want []T
				if c.Rank() > 0 {
					want = serial(op, c.Rank(), l, 9)
				}
				return expect("exscan", got, want)
			}})
		}
	}
	return cs
}

func allCases() []tcase {
	cs := []tcase{{"Barrier", func(ctx context.Context, c *mpi.Comm) error { return Barrier(ctx, c) }}}
	// The large lengths just pass the inline limits (64 KiB for Bcast and
	// Scatter, 16 KiB for one rank's Gather, 256 KiB for Reduce), and for
	// float64 pass two broadcast segments. The bulk paths do not depend on
	// the element type but through the encoding, so the largest run for
	// some types only, which keeps the suite quick under -race.
	cs = append(cs, anyCases("int", func(v int) int { return v }, 9000, 2100, false)...)
	cs = append(cs, anyCases("int32", func(v int) int32 { return int32(v) }, 17000, 4200, false)...)
	cs = append(cs, anyCases("float64", func(v int) float64 { return float64(v) }, 70000, 2100, true)...)
	cs = append(cs, anyCases("complex128", func(v int) complex128 { return complex(float64(v), float64(-v)) }, 5000, 1100, false)...)
	cs = append(cs, anyCases("point", func(v int) point { return point{v, -v, fmt.Sprint("p", v)} }, 12000, 3000, true)...)
	cs = append(cs, numberCases("int", func(v int) int { return v }, Min[int], Max[int], 0, 0)...)
	cs = append(cs, numberCases("int32", func(v int) int32 { return int32(v) }, Min[int32], Max[int32], 0, 0)...)
	cs = append(cs, numberCases("float64", func(v int) float64 { return float64(v) }, Min[float64], Max[float64], 8000, 2100)...)
	cs = append(cs, numberCases("complex128", func(v int) complex128 { return complex(float64(v), 1) }, nil, nil, 4000, 1100)...)
	cs = append(cs, tcase{"non-blocking", nonBlockingCase})
	for _, k := range []int{3, 3000} { // 3000 float64s a block pass Gatherv's 16 KiB inline limit
		cs = append(cs, tcase{fmt.Sprintf("v-collectives/%d", k), func(ctx context.Context, c *mpi.Comm) error { return vCase(ctx, c, k) }})
	}
	return cs
}

// vCase runs the collectives whose counts differ by rank (Alltoallv,
// Gatherv at every root, Allgatherv, ReduceScatter, ReduceScatterBlock)
// and the reductions over any type (ReduceFunc at every root,
// AllreduceFunc), with blocks of about k elements, and checks each result
// against what the ranks sent.
func vCase(ctx context.Context, c *mpi.Comm, k int) error {
	n, me := c.Size(), c.Rank()
	val := func(src, dst, i int) float64 { return float64(src*1_000_000 + dst*10_000 + i) }
	// Rank src sends dst a block of k+src+dst elements.
	size := func(src, dst int) int { return k + src + dst }
	var data []float64
	counts := make([]int, n)
	for dst := range n {
		counts[dst] = size(me, dst)
		for i := range counts[dst] {
			data = append(data, val(me, dst, i))
		}
	}
	out, got, err := Alltoallv(ctx, c, data, counts)
	if err != nil {
		return fmt.Errorf("Alltoallv: %w", err)
	}
	var want []float64
	for src := range n {
		if got[src] != size(src, me) {
			return fmt.Errorf("Alltoallv: %d elements from rank %d, want %d", got[src], src, size(src, me))
		}
		for i := range size(src, me) {
			want = append(want, val(src, me, i))
		}
	}
	if !slices.Equal(out, want) {
		return errors.New("Alltoallv: the data differ")
	}
	mine := data[:counts[0]] // this rank's block for rank 0: k+me elements
	var all []float64
	for r := range n {
		for i := range size(r, 0) {
			all = append(all, val(r, 0, i))
		}
	}
	for root := range n {
		g, gc, err := Gatherv(ctx, c, root, mine)
		if err != nil {
			return fmt.Errorf("Gatherv to %d: %w", root, err)
		}
		if me != root && (g != nil || gc != nil) || me == root && !slices.Equal(g, all) {
			return fmt.Errorf("Gatherv to %d: %d elements on rank %d", root, len(g), me)
		}
	}
	ag, agc, err := Allgatherv(ctx, c, mine)
	if err != nil || !slices.Equal(ag, all) || len(agc) != n || agc[n-1] != size(n-1, 0) {
		return fmt.Errorf("Allgatherv: %d elements, %v", len(ag), err)
	}
	// Every rank reduces the same-length vector x_r[i] = r + i.
	vec := make([]float64, n*k)
	sum := make([]float64, n*k)
	for i := range vec {
		vec[i] = float64(me + i)
		sum[i] = float64(n*i + n*(n-1)/2)
	}
	b, err := ReduceScatterBlock(ctx, c, vec, Sum[float64])
	if err != nil || !slices.Equal(b, sum[me*k:(me+1)*k]) {
		return fmt.Errorf("ReduceScatterBlock: %d elements, %v", len(b), err)
	}
	rc := make([]int, n) // uneven: rank r gets k+r-... adding up to n*k
	left := n * k
	for r := range n - 1 {
		rc[r] = min(left, k/2+r)
		left -= rc[r]
	}
	rc[n-1] = left
	off := 0
	for r := range me {
		off += rc[r]
	}
	rs, err := ReduceScatter(ctx, c, vec, rc, Sum[float64])
	if err != nil || !slices.Equal(rs, sum[off:off+rc[me]]) {
		return fmt.Errorf("ReduceScatter: %d elements, %v", len(rs), err)
	}
	locs := []Loc[float64]{{Val: float64((me * 7) % n), Index: me}}
	for root := range n {
		m, err := ReduceFunc(ctx, c, root, locs, MinLoc[float64])
		if err != nil || me == root && (len(m) != 1 || m[0].Val != 0 || m[0].Index != 0) {
			return fmt.Errorf("ReduceFunc to %d: %v, %v", root, m, err)
		}
	}
	mx, err := AllreduceFunc(ctx, c, locs, MaxLoc[float64])
	if err != nil || len(mx) != 1 || mx[0].Val != float64(maxOf(n, func(r int) int { return (r * 7) % n })) {
		return fmt.Errorf("AllreduceFunc: %v, %v", mx, err)
	}
	return nil
}

// maxOf is the largest f(r) for r in [0, n).
func maxOf(n int, f func(int) int) int {
	m := f(0)
	for r := 1; r < n; r++ {
		m = max(m, f(r))
	}
	return m
}

// nonBlockingCase starts one of each non-blocking collective, small and
// past the inline limits, runs a blocking Allreduce while they are in
// flight, and checks every result once they end.
func nonBlockingCase(ctx context.Context, c *mpi.Comm) error {
	n, me := c.Size(), c.Rank()
	root := n / 2
	const big = 70000 // float64s: past the inline limits of Bcast, Reduce and Allgather
	mine := gen(func(v int) float64 { return float64(v) }, me, big, 1)
	var bdata []float64
	if me == root {
		bdata = mine
	}
	rb := Ibarrier(c)
	rs := Ibcast(c, root, []int{root, 7})
	rl := Ibcast(c, root, bdata)
	ra := Iallreduce(c, mine, Sum[float64])
	rr := Ireduce(c, root, []int{me}, Max[int])
	part := big / (n + 1) // each rank's share of the Iallgather
	rg := Iallgather(c, mine[:part])
	one, err := Allreduce(ctx, c, []int{1}, Sum[int])
	if err != nil || one[0] != n {
		return fmt.Errorf("Allreduce beside them: %v, %v", one, err)
	}
	if _, err := rb.Wait(ctx); err != nil {
		return fmt.Errorf("Ibarrier: %w", err)
	}
	if got, err := rs.Wait(ctx); err != nil || !slices.Equal(got, []int{root, 7}) {
		return fmt.Errorf("Ibcast small: %v, %v", got, err)
	}
	if got, err := rl.Wait(ctx); err != nil || !slices.Equal(got, gen(func(v int) float64 { return float64(v) }, root, big, 1)) {
		return fmt.Errorf("Ibcast large: %d elements, %v", len(got), err)
	}
	got, err := ra.Wait(ctx)
	if err != nil || len(got) != big {
		return fmt.Errorf("Iallreduce: %d elements, %v", len(got), err)
	}
	want := make([]float64, big)
	for r := range n {
		for i, x := range gen(func(v int) float64 { return float64(v) }, r, big, 1) {
			want[i] += x
		}
	}
	if !slices.Equal(got, want) {
		return errors.New("Iallreduce: the sums differ")
	}
	if got, err := rr.Wait(ctx); err != nil || (me == root) != (got != nil) || me == root && got[0] != n-1 {
		return fmt.Errorf("Ireduce: %v, %v", got, err)
	}
	all, err := rg.Wait(ctx)
	if err != nil || len(all) != n*part {
		return fmt.Errorf("Iallgather: %d elements, %v", len(all), err)
	}
	for r := range n {
		if want := gen(func(v int) float64 { return float64(v) }, r, part, 1); !slices.Equal(all[r*part:(r+1)*part], want) {
			return fmt.Errorf("Iallgather: rank %d's part differs", r)
		}
	}
	return nil
}

// runCases runs every case on c, each followed by mpitest.Quiet: after
// every case, no rank holds anything of its traffic.
func runCases(ctx context.Context, c *mpi.Comm, where string, cs []tcase) error {
	qc, err := c.Dup(ctx)
	if err != nil {
		return err
	}
	for _, tc := range cs {
		if err := tc.run(ctx, c); err != nil {
			return fmt.Errorf("%s: %s: rank %d of %d: %w", where, tc.name, c.Rank(), c.Size(), err)
		}
		if err := mpitest.Quiet(ctx, qc); err != nil {
			return fmt.Errorf("%s: after %s: %w", where, tc.name, err)
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	conformance(t, mpitest.Run)
}

// TestConformanceMemory runs the suite over the in-memory transport, with
// seeded delays and frames reordered across senders and streams. A
// failure names its seed; -memory.seed replays it.
func TestConformanceMemory(t *testing.T) {
	conformance(t, func(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
		mpitest.NewNet(mpitest.Chaos(t, *memorySeed, "./collectives -memory.seed")).Run(t, n, fn, opts...)
	})
}

func conformance(t *testing.T, run func(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option)) {
	cs := allCases()
	for _, n := range sizes {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				if err := runCases(ctx, c, "world", cs); err != nil {
					return err
				}
				// Odd and even ranks, in reverse order: sub-communicators
				// whose ranks differ from the world's, used at the same
				// time by both halves.
				sub, err := c.Split(ctx, c.Rank()%2, -c.Rank())
				if err != nil {
					return err
				}
				return runCases(ctx, sub, "split", cs)
			})
		})
	}
}

// TestBulkSizes checks that the large lengths of the suite do take the bulk
// paths, should the limits change.
func TestBulkSizes(t *testing.T) {
	pt := func(n int) int {
		b, err := encode(infoOf[point](), gen(func(v int) point { return point{v, -v, fmt.Sprint("p", v)} }, 0, n, 1))
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	for _, tt := range []struct {
		what        string
		bytes, over int
	}{
		{"Bcast int", 9000 * 8, bcastInline},
		{"Bcast int32", 17000 * 4, bcastInline},
		{"Bcast float64 (two segments)", 70000 * 8, bcastSegment},
		{"Bcast complex128", 5000 * 16, bcastInline},
		{"Bcast point", pt(12000), bcastInline},
		{"Scatter float64", 70000 * 8, scatterInline},
		{"Gather int", 2100 * 8, gatherInline},
		{"Gather int32", 4200 * 4, gatherInline},
		{"Gather complex128", 1100 * 16, gatherInline},
		{"Gather point", pt(3000), gatherInline},
		{"Reduce float64", 8000 * 8, reduceInline},
		{"Reduce complex128", 4000 * 16, reduceInline},
		{"Scan float64", 2100 * 8, gatherInline},
		{"Scan complex128", 1100 * 16, gatherInline},
		{"Alltoall int (k = 2100/n+1)", 2100 * 8, gatherInline},
	} {
		if tt.bytes <= tt.over {
			t.Errorf("%s: %d bytes do not pass the limit of %d", tt.what, tt.bytes, tt.over)
		}
	}
}
