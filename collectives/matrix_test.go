package collectives

import (
	"context"
	"flag"
	"fmt"
	gomaps "maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// The threshold matrix (TestMatrix): every collective on every
// communicator size in matrixSizes, at and around every size at which the
// code switches paths, for every element kind, against a serial reference.
//
// The thresholds come from the constants the code switches on, so that
// moving one moves the test: bcastInline, scatterInline, gatherInline,
// allgatherInline (shared out per rank), reduceInline, halvingMax,
// bcastSegment, mpi's eager limit and the chunk size (the in-process
// server's max payload). Each gives three lengths: one element below it, at
// it and one above (in elements of the kind at hand; exactly where a header
// counts, as in Scatter's block list and for gob-encoded structs). Every
// kind crosses the thresholds up to the eager limit (but the struct, at
// n > 4, in Allgather and Alltoall, whose n*n gob encodings of blocks that
// size took most of the matrix's time: past the encoding the path depends
// on the bytes only, and float64 crosses it there); float64 and int8 cross
// the large ones too (segment, chunk, halvingMax), where the path no longer
// depends on the element type but through its size.
//
// Roots: every root below the smallest threshold, roots 0 and n-1 around
// the small thresholds, root n-1 past the large ones. Every kind runs at
// n = 1 and 3 (float64 and the struct elsewhere); the large thresholds at
// n <= 4 (recursive halving at 1, 2, 4; the ring at 3). Communicators: the
// world runs every case; at n <= 5 a Dup and a Split (odd and even ranks,
// reversed) run the float64 and struct cases below the large thresholds;
// at n = 3 and 4 the world again with multicast off, with single copies
// off, and with both off runs the float64 and struct cases past the inline
// limits. n = 1 runs everything. (Measured: about 3 minutes under -race on
// 2 cores, alone.)
//
// Cases per collective and world size (-matrix.counts prints this table):
//
//	collective     n=1   n=2   n=3   n=4   n=5   n=7   n=8   n=9  n=16
//	Allgather      214    29   214    23    23    23    23    23    17
//	Allreduce      331    28   331    28    22    22    22    22    22
//	Alltoall       144    18   144    18    15    15    15    15    15
//	Barrier          1     1     1     1     1     1     1     1     1
//	Bcast          156    42   332    50    48    56    60    64    92
//	Exscan         193    16   193    16    13    13    13    13    13
//	Gather         214    43   374    49    64    76    82    88   118
//	Reduce         331    50   724    60    59    69    74    79   114
//	Scan           193    16   193    16    13    13    13    13    13
//	Scatter        134    33   262    37    36    40    42    44    58
//	Scatterv        32     8    96    16    20    28    32    36    64
//
// (A case is one call on every rank of one communicator, with one root.)
var matrixCounts = flag.Bool("matrix.counts", false, "print the threshold matrix's case counts and exit the test")

var matrixSizes = []int{1, 2, 3, 4, 5, 7, 8, 9, 16}

// chunkSize is mpi's rendezvous chunk under mpitest: the in-process
// server's max payload.
const chunkSize = server.MAX_PAYLOAD_SIZE

// eagerLimit is the largest message mpi sends eagerly.
var eagerLimit = min(mpi.DefaultOptions().EagerLimit, chunkSize-64)

// mcase is one call of a collective on every rank of a communicator.
type mcase struct {
	coll string // the collective, for the counts
	name string
	run  func(ctx context.Context, c *mpi.Comm, ref *refs) error
}

// refs caches the serial reference of each case, computed once for all
// the ranks of a world (they are goroutines of this process).
type refs struct {
	mu sync.Mutex
	m  map[string]*refEntry
}

type refEntry struct {
	once sync.Once
	v    any
}

func (r *refs) get(key string, f func() any) any {
	r.mu.Lock()
	e := r.m[key]
	if e == nil {
		e = &refEntry{}
		r.m[key] = e
	}
	r.mu.Unlock()
	e.once.Do(func() { e.v = f() })
	return e.v
}

// around returns the lengths one below, at and one above the largest
// length whose wire size, by wire, is at most limit bytes.
func around(limit int, wire func(l int) int) []int {
	lo, hi := 0, 1
	for wire(hi) <= limit {
		hi *= 2
	}
	for lo+1 < hi { // wire(lo) <= limit < wire(hi)
		mid := (lo + hi) / 2
		if wire(mid) <= limit {
			lo = mid
		} else {
			hi = mid
		}
	}
	return []int{max(lo-1, 0), lo, lo + 1}
}

// kspec is one element kind of the matrix.
type kspec[T any] struct {
	name string
	of   func(v int) T
	big  bool // also past the large thresholds, where large is set
	// wire is the encoded size of l elements.
	wire  func(l int) int
	large bool // this run crosses the large thresholds
	gob   bool // the kind travels gob-encoded
}

func rawKind[T mpi.Number](name string, of func(int) T, big bool) kspec[T] {
	var z T
	size := len(mpi.AsBytes([]T{z}))
	return kspec[T]{name: name, of: of, big: big, wire: func(l int) int { return l * size }}
}

func gobKind[T any](name string, of func(int) T, big bool) kspec[T] {
	return kspec[T]{name: name, of: of, big: big, gob: true, wire: func(l int) int {
		if v, ok := gobSizes.Load(l); ok {
			return v.(int)
		}
		xs := make([]T, l)
		for i := range xs {
			xs[i] = of(value(0, i, 1))
		}
		b, err := encode(infoOf[T](), xs)
		if err != nil {
			panic(err)
		}
		gobSizes.Store(l, len(b))
		return len(b)
	}}
}

// gobSizes caches the encoded size of l structs (the matrix's only gob
// kind), which the thresholds' searches ask for again and again.
var gobSizes sync.Map // int -> int

// lengths returns the sorted, distinct lengths past the given thresholds
// (bytes, for wire), plus extra.
func lengths(wire func(int) int, thresholds []int, extra ...int) []int {
	set := map[int]bool{}
	for _, l := range extra {
		set[l] = true
	}
	for _, t := range thresholds {
		for _, l := range around(t, wire) {
			set[l] = true
		}
	}
	return slices.Sorted(gomaps.Keys(set))
}

// rootsFor returns the roots a case of length l runs with, where small is
// the largest length that runs with every root and large the smallest that
// runs with one.
func rootsFor(n, l, small, large int) []int {
	switch {
	case l <= small:
		rs := make([]int, n)
		for i := range rs {
			rs[i] = i
		}
		return rs
	case l >= large:
		return []int{n - 1}
	}
	if n == 1 {
		return []int{0}
	}
	return []int{0, n - 1}
}

// anyMatrix returns the cases of the collectives that take any element
// type, for a communicator of n ranks.
func anyMatrix[T comparable](k kspec[T], n int) []mcase {
	var cs []mcase
	small := []int{bcastInline, eagerLimit}
	large := []int{bcastSegment, chunkSize}
	ths := small
	if k.big && k.large {
		ths = append(slices.Clone(small), large...)
	}
	// The length past which a case runs with one root.
	bigLen := around(bcastSegment, k.wire)[0]
	genAll := func(r, l, seed int) []T { return gen(k.of, r, l, seed) }

	for _, l := range lengths(k.wire, ths, 0, 1, 5) {
		for _, root := range rootsFor(n, l, 1, bigLen) {
			cs = append(cs, mcase{"Bcast", fmt.Sprintf("Bcast/%s/len=%d/root=%d", k.name, l, root), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
				var in []T
				if c.Rank() == root {
					in = genAll(root, l, 1)
				}
				got, err := Bcast(ctx, c, root, in)
				if err != nil {
					return err
				}
				return expect("bcast", got, genAll(root, l, 1))
			}})
		}
	}

	// Scatter: the whole array's block list against scatterInline, and one
	// rank's block against the eager limit and the chunk.
	blockList := func(total int) int { return 4 + 8*n + k.wire(total) }
	sths := []int{}
	sl := lengths(blockList, []int{scatterInline}, 0, max(n-1, 0), 10)
	per := []int{eagerLimit}
	if k.big && k.large {
		per = append(per, chunkSize)
	}
	for _, t := range per {
		for _, l := range around(t, k.wire) {
			sl = append(sl, l*n)
		}
	}
	_ = sths
	slices.Sort(sl)
	sl = slices.Compact(sl)
	for _, l := range sl {
		for _, root := range rootsFor(n, l, 1, around(eagerLimit, k.wire)[0]*n) {
			cs = append(cs, mcase{"Scatter", fmt.Sprintf("Scatter/%s/len=%d/root=%d", k.name, l, root), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
				all := genAll(root, l, 2)
				var in []T
				if c.Rank() == root {
					in = all
				}
				got, err := Scatter(ctx, c, root, in)
				if err != nil {
					return err
				}
				o := offsets(blockCounts(l, c.Size()))
				return expect("scatter", got, all[o[c.Rank()]:o[c.Rank()+1]])
			}})
		}
	}
	// Scatterv: zeros and uneven counts, and one block past the eager limit.
	for _, variant := range []string{"uneven", "one-large"} {
		for _, root := range rootsFor(n, 0, 0, 1) {
			cs = append(cs, mcase{"Scatterv", fmt.Sprintf("Scatterv/%s/%s/root=%d", k.name, variant, root), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
				counts := make([]int, c.Size())
				for r := range counts {
					counts[r] = (r*2 + root) % 4
				}
				if variant == "one-large" {
					counts[c.Size()-1] = around(eagerLimit, k.wire)[2]
				}
				o := offsets(counts)
				all := genAll(root, o[c.Size()], 3)
				var in []T
				var cin []int
				if c.Rank() == root {
					in, cin = all, counts
				}
				got, err := Scatterv(ctx, c, root, in, cin)
				if err != nil {
					return err
				}
				return expect("scatterv", got, all[o[c.Rank()]:o[c.Rank()+1]])
			}})
		}
	}

	// Gather and Allgather: one rank's part against gatherInline, the
	// eager limit (and the chunk), and every rank's together against
	// allgatherInline; plus parts whose lengths differ by rank.
	gths := []int{gatherInline, allgatherInline / n, eagerLimit}
	if k.big && k.large {
		gths = append(gths, chunkSize)
	}
	gl := lengths(k.wire, gths, 0, 1, 3)
	glen := append(slices.Clone(gl), -1) // -1: (r+1)%4 elements on rank r
	// A gob kind's blocks around the eager limit cost n*n encodings in
	// Allgather and Alltoall, most of the matrix's time at n = 16 under
	// -race: they run where the large thresholds do. A raw kind crosses
	// the eager limit at every size, and past the encoding the path
	// depends on the bytes only.
	eagerLens := around(eagerLimit, k.wire)
	squared := func(l int) bool { return k.gob && !k.large && slices.Contains(eagerLens, l) }
	for _, l := range glen {
		partLen := func(r int) int {
			if l < 0 {
				return (r + 1) % 4
			}
			return l
		}
		ref := func(size, seed int) []T {
			all := []T{}
			for r := range size {
				all = append(all, genAll(r, partLen(r), seed)...)
			}
			return all
		}
		for _, root := range rootsFor(n, max(l, 0), 1, around(eagerLimit, k.wire)[0]) {
			cs = append(cs, mcase{"Gather", fmt.Sprintf("Gather/%s/len=%d/root=%d", k.name, l, root), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
				got, err := Gather(ctx, c, root, genAll(c.Rank(), partLen(c.Rank()), 4))
				if err != nil {
					return err
				}
				var want []T
				if c.Rank() == root {
					want = ref(c.Size(), 4)
				}
				return expect("gather", got, want)
			}})
		}
		if squared(l) {
			continue
		}
		cs = append(cs, mcase{"Allgather", fmt.Sprintf("Allgather/%s/len=%d", k.name, l), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
			got, err := Allgather(ctx, c, genAll(c.Rank(), partLen(c.Rank()), 5))
			if err != nil {
				return err
			}
			return expect("allgather", got, ref(c.Size(), 5))
		}})
	}

	// Alltoall: a rank's whole block list against gatherInline, and one
	// block against the eager limit.
	whole := func(kk int) int { return 4 + 8*n + k.wire(kk*n) }
	al := lengths(whole, []int{gatherInline}, 0, 1, 3)
	al = append(al, eagerLens...)
	slices.Sort(al)
	al = slices.Compact(al)
	for _, kk := range al {
		if squared(kk) {
			continue
		}
		cs = append(cs, mcase{"Alltoall", fmt.Sprintf("Alltoall/%s/k=%d", k.name, kk), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
			m := c.Size()
			var in, want []T
			for j := range m {
				in = append(in, genAll(c.Rank()*m+j, kk, 6)...)
				want = append(want, genAll(j*m+c.Rank(), kk, 6)...)
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

// numberMatrix returns the cases of the collectives that reduce, for a
// communicator of n ranks. minOp and maxOp are nil for complex kinds.
func numberMatrix[T mpi.Number](k kspec[T], n int, minOp, maxOp Op[T]) []mcase {
	type namedOp struct {
		name string
		op   Op[T]
	}
	ops := []namedOp{{"sum", Sum[T]}, {"prod", Prod[T]}, {"user", func(acc, in []T) {
		for i := range acc {
			acc[i] = acc[i] + in[i] + k.of(1)
		}
	}}}
	if minOp != nil {
		ops = append(ops, namedOp{"min", minOp}, namedOp{"max", maxOp})
	}
	serial := func(op Op[T], ranks, l, seed int) []T {
		acc := gen(k.of, 0, l, seed)
		for r := 1; r < ranks; r++ {
			op(acc, gen(k.of, r, l, seed))
		}
		return acc
	}
	ths := []int{reduceInline, eagerLimit}
	if k.big && k.large {
		ths = append(ths, chunkSize)
		if k.name == "float64" {
			ths = append(ths, halvingMax)
		}
	}
	var cs []mcase
	for _, l := range lengths(k.wire, ths, 0, 3) {
		for _, o := range ops {
			if l > 3 && o.name != "sum" && (o.name != "user" || l > around(eagerLimit, k.wire)[2]) {
				continue // every op on small data; sum (and a user op) on bulk data
			}
			key := func(c *mpi.Comm, what string) string {
				return fmt.Sprintf("%s/%s/%s/%d/size=%d", what, k.name, o.name, l, c.Size())
			}
			for _, root := range rootsFor(n, l, 0, around(chunkSize, k.wire)[0]) {
				cs = append(cs, mcase{"Reduce", fmt.Sprintf("Reduce/%s/%s/len=%d/root=%d", k.name, o.name, l, root), func(ctx context.Context, c *mpi.Comm, ref *refs) error {
					in := gen(k.of, c.Rank(), l, 7)
					got, err := Reduce(ctx, c, root, in, o.op)
					if err != nil {
						return err
					}
					var want []T
					if c.Rank() == root {
						want = ref.get(key(c, "reduce"), func() any { return serial(o.op, c.Size(), l, 7) }).([]T)
					}
					if err := expect("reduce", got, want); err != nil {
						return err
					}
					return expect("data after Reduce", in, gen(k.of, c.Rank(), l, 7))
				}})
			}
			cs = append(cs, mcase{"Allreduce", fmt.Sprintf("Allreduce/%s/%s/len=%d", k.name, o.name, l), func(ctx context.Context, c *mpi.Comm, ref *refs) error {
				got, err := Allreduce(ctx, c, gen(k.of, c.Rank(), l, 8), o.op)
				if err != nil {
					return err
				}
				return expect("allreduce", got, ref.get(key(c, "allreduce"), func() any { return serial(o.op, c.Size(), l, 8) }).([]T))
			}})
		}
	}
	sths := []int{gatherInline}
	if k.big && k.large {
		sths = append(sths, eagerLimit)
	}
	for _, l := range lengths(k.wire, sths, 0, 4) {
		for _, o := range ops {
			if l > 4 && o.name != "user" {
				continue
			}
			cs = append(cs, mcase{"Scan", fmt.Sprintf("Scan/%s/%s/len=%d", k.name, o.name, l), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
				got, err := Scan(ctx, c, gen(k.of, c.Rank(), l, 9), o.op)
				if err != nil {
					return err
				}
				return expect("scan", got, serial(o.op, c.Rank()+1, l, 9))
			}})
			cs = append(cs, mcase{"Exscan", fmt.Sprintf("Exscan/%s/%s/len=%d", k.name, o.name, l), func(ctx context.Context, c *mpi.Comm, _ *refs) error {
				got, err := Exscan(ctx, c, gen(k.of, c.Rank(), l, 10), o.op)
				if err != nil {
					return err
				}
				var want []T
				if c.Rank() > 0 {
					want = serial(o.op, c.Rank(), l, 10)
				}
				return expect("exscan", got, want)
			}})
		}
	}
	return cs
}

var pointNames = []string{"p-2", "p-1", "p0", "p1", "p2"}

// largeAt reports whether a world of n ranks crosses the large thresholds
// (the chunk, bcastSegment, halvingMax): the power-of-two sizes that take
// recursive halving, and sizes that take the ring, n = 1 among them.
func largeAt(n int) bool { return n <= 4 }

// allKindsAt reports whether a world of n ranks runs every element kind, or
// only float64 and the struct (the paths past the encoding are the same
// for every kind).
func allKindsAt(n int) bool { return n == 1 || n == 3 }

// matrixCases returns the cases for a communicator of n ranks: float64's
// and the struct's (and Barrier's), and with all every other kind's; with
// large, also those past the large thresholds.
func matrixCases(n int, all, large bool) []mcase {
	cs := []mcase{{"Barrier", "Barrier", func(ctx context.Context, c *mpi.Comm, _ *refs) error { return Barrier(ctx, c) }}}
	f64 := rawKind("float64", func(v int) float64 { return float64(v) }, true)
	f64.large = large
	pt := gobKind("point", func(v int) point { return point{v, -v, pointNames[v+2]} }, false)
	pt.large = large
	cs = append(cs, anyMatrix(f64, n)...)
	cs = append(cs, numberMatrix(f64, n, Min[float64], Max[float64])...)
	cs = append(cs, anyMatrix(pt, n)...)
	if !all {
		return cs
	}
	add := func(a, b []mcase) { cs = append(cs, a...); cs = append(cs, b...) }
	add(integerKind("int", func(v int) int { return v }, n, false))
	add(integerKind("int8", func(v int) int8 { return int8(v) }, n, large))
	add(integerKind("int16", func(v int) int16 { return int16(v) }, n, false))
	add(integerKind("int32", func(v int) int32 { return int32(v) }, n, false))
	add(integerKind("int64", func(v int) int64 { return int64(v) }, n, false))
	add(integerKind("uint", func(v int) uint { return uint(v) }, n, false))
	add(integerKind("uint8", func(v int) uint8 { return uint8(v) }, n, false))
	add(integerKind("uint16", func(v int) uint16 { return uint16(v) }, n, false))
	add(integerKind("uint32", func(v int) uint32 { return uint32(v) }, n, false))
	add(integerKind("uint64", func(v int) uint64 { return uint64(v) }, n, false))
	add(integerKind("uintptr", func(v int) uintptr { return uintptr(v) }, n, false))
	f32 := rawKind("float32", func(v int) float32 { return float32(v) }, false)
	add(anyMatrix(f32, n), numberMatrix(f32, n, Min[float32], Max[float32]))
	c64 := rawKind("complex64", func(v int) complex64 { return complex(float32(v), 1) }, false)
	add(anyMatrix(c64, n), numberMatrix(c64, n, nil, nil))
	c128 := rawKind("complex128", func(v int) complex128 { return complex(float64(v), float64(-v)) }, false)
	add(anyMatrix(c128, n), numberMatrix(c128, n, nil, nil))
	return cs
}

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

func integerKind[T integer](name string, of func(int) T, n int, large bool) ([]mcase, []mcase) {
	k := rawKind(name, of, large)
	k.large = large
	return anyMatrix(k, n), numberMatrix(k, n, Min[T], Max[T])
}

// bulkOnly keeps the cases past the smallest inline limit.
func bulkOnly(cs []mcase) []mcase {
	var out []mcase
	for _, c := range cs {
		if strings.Contains(c.name, "len=") || strings.Contains(c.name, "k=") {
			var l int
			for _, f := range strings.Split(c.name, "/") {
				if v, ok := strings.CutPrefix(f, "len="); ok {
					fmt.Sscan(v, &l)
				}
				if v, ok := strings.CutPrefix(f, "k="); ok {
					fmt.Sscan(v, &l)
				}
			}
			if l < 1000 {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

func runMatrix(ctx context.Context, c *mpi.Comm, where string, cs []mcase, ref *refs) error {
	for _, tc := range cs {
		if err := tc.run(ctx, c, ref); err != nil {
			return fmt.Errorf("%s: %s: rank %d of %d: %w", where, tc.name, c.Rank(), c.Size(), err)
		}
	}
	return nil
}

func TestMatrix(t *testing.T) {
	if *matrixCounts {
		printCounts(t)
		return
	}
	for _, n := range matrixSizes {
		if testing.Short() && n > 4 && n != 16 {
			continue
		}
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			ref := &refs{m: map[string]*refEntry{}}
			all, sample, half := matrixCases(n, allKindsAt(n), largeAt(n)), matrixCases(n, false, false), map[int][]mcase{}
			for _, h := range []int{(n + 1) / 2, n / 2} {
				if h > 0 {
					half[h] = matrixCases(h, false, false)
				}
			}
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				if err := runMatrix(ctx, c, "world", all, ref); err != nil {
					return err
				}
				if n > 5 {
					return nil // Dup and Split at the smaller sizes, where they cost less
				}
				d, err := c.Dup(ctx)
				if err != nil {
					return err
				}
				if err := runMatrix(ctx, d, "dup", sample, ref); err != nil {
					return err
				}
				sub, err := c.Split(ctx, c.Rank()%2, -c.Rank())
				if err != nil {
					return err
				}
				return runMatrix(ctx, sub, "split", half[sub.Size()], ref)
			})
		})
		if n != 3 && n != 4 {
			continue // the variants at the sizes that cross the large thresholds
		}
		for _, v := range []struct {
			name   string
			mc, sc bool
		}{{"multicast-off", false, true}, {"single-copy-off", true, false}, {"both-off", false, false}} {
			t.Run(fmt.Sprintf("n=%d,%s", n, v.name), func(t *testing.T) {
				ref := &refs{m: map[string]*refEntry{}}
				cs := bulkOnly(matrixCases(n, false, largeAt(n)))
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					return runMatrix(ctx, c, v.name, cs, ref)
				}, mpi.WithMulticast(v.mc), mpi.WithSingleCopy(v.sc))
			})
		}
	}
}

// printCounts logs the number of world cases per collective and size.
func printCounts(t *testing.T) {
	counts := map[string]map[int]int{}
	for _, n := range matrixSizes {
		for _, c := range matrixCases(n, allKindsAt(n), largeAt(n)) {
			if counts[c.coll] == nil {
				counts[c.coll] = map[int]int{}
			}
			counts[c.coll][n]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s", "collective")
	for _, n := range matrixSizes {
		fmt.Fprintf(&b, "%6s", fmt.Sprintf("n=%d", n))
	}
	b.WriteString("\n")
	names := slices.Collect(gomaps.Keys(counts))
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "%-12s", name)
		for _, n := range matrixSizes {
			fmt.Fprintf(&b, "%6d", counts[name][n])
		}
		b.WriteString("\n")
	}
	t.Log("\n" + b.String())
}
