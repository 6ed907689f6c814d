package collectives

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// The randomized differential test (TestRandom): seeded random cases, each
// a collective, a communicator (world, Dup or Split) of a random size, a
// root, a length near one of the thresholds or small, an element kind, an
// op and the transport options, with random data, run against a serial
// reference. Case i of a run has seed base+i; a failure names its seed and
// the command that replays it alone:
//
//	go test ./collectives -run TestRandom -random.seed=SEED -random.cases=1
var (
	randomSeed  = flag.Uint64("random.seed", 0, "TestRandom's first case seed (0: from the clock)")
	randomCases = flag.Int("random.cases", 300, "how many cases TestRandom runs")
)

// rcase is one random case, all drawn from its seed.
type rcase struct {
	seed     uint64
	coll     string
	kind     string
	op       string
	n        int    // world size
	comm     string // world, dup or split
	root     int    // in the communicator the call runs on (taken modulo its size)
	length   int    // per rank, or in all for Scatter, or per block for Alltoall
	mc, sc   bool   // multicast, single copies
	lenRanks bool   // Gather/Allgather: lengths differ by rank
}

func (r rcase) String() string {
	return fmt.Sprintf("seed=%d %s[%s] op=%s n=%d comm=%s root=%d len=%d varlen=%v multicast=%v singlecopy=%v",
		r.seed, r.coll, r.kind, r.op, r.n, r.comm, r.root, r.length, r.lenRanks, r.mc, r.sc)
}

var (
	randomColls = []string{"Barrier", "Bcast", "Scatter", "Scatterv", "Gather", "Allgather", "Alltoall", "Reduce", "Allreduce", "Scan", "Exscan"}
	randomSizes = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 16}
	anyKinds    = []string{"float64", "int32", "int8", "complex128", "uint16", "float32", "point"}
	numKinds    = anyKinds[:6]
)

func drawCase(seed uint64) rcase {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	r := rcase{seed: seed, coll: pick(randomColls), n: randomSizes[rng.IntN(len(randomSizes))]}
	r.comm = []string{"world", "world", "dup", "split"}[rng.IntN(4)]
	r.mc, r.sc = rng.IntN(4) != 0, rng.IntN(4) != 0
	r.root = rng.IntN(r.n)
	r.lenRanks = rng.IntN(3) == 0
	switch r.coll {
	case "Reduce", "Allreduce", "Scan", "Exscan":
		r.kind = pick(numKinds)
		r.op = pick([]string{"sum", "sum", "prod", "min", "max"})
		if r.kind == "complex128" && (r.op == "min" || r.op == "max") {
			r.op = "sum"
		}
	default:
		r.kind = pick(anyKinds)
	}
	// Lengths: small, or near a threshold (in bytes of the kind at hand).
	size := map[string]int{"float64": 8, "int32": 4, "int8": 1, "complex128": 16, "uint16": 2, "float32": 4, "point": 16}[r.kind]
	ths := []int{bcastInline, scatterInline, gatherInline, reduceInline, eagerLimit}
	if r.n <= 4 {
		ths = append(ths, allgatherInline, bcastSegment, chunkSize)
	}
	if rng.IntN(3) == 0 {
		r.length = rng.IntN(20)
	} else {
		t := ths[rng.IntN(len(ths))]
		r.length = max(t/size+rng.IntN(5)-2, 0)
	}
	if r.coll == "Alltoall" {
		r.length = max(r.length/r.n, rng.IntN(3))
	}
	return r
}

// randomSeeds is the first seed of a randomized test's run (-random.seed,
// or the clock), and how many cases it runs: cases, or at most short with
// -short.
func randomSeeds(t *testing.T, cases, short int) (uint64, int) {
	base := *randomSeed
	if base == 0 {
		base = uint64(time.Now().UnixNano())
	}
	if testing.Short() && cases > short {
		cases = short
	}
	t.Logf("seeds %d to %d", base, base+uint64(cases)-1)
	return base, cases
}

func TestRandom(t *testing.T) {
	base, cases := randomSeeds(t, *randomCases, 100)
	for i := range cases {
		rc := drawCase(base + uint64(i))
		t.Run(fmt.Sprint(rc.seed), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			err := mpitest.World(ctx, rc.n, func(ctx context.Context, c *mpi.Comm) error {
				return runRandom(ctx, c, rc)
			}, mpi.WithMulticast(rc.mc), mpi.WithSingleCopy(rc.sc))
			if err != nil {
				t.Errorf("%v\n  case: %v\n  replay: go test ./collectives -run TestRandom -random.seed=%d -random.cases=1", err, rc, rc.seed)
			}
		})
	}
}

func runRandom(ctx context.Context, world *mpi.Comm, rc rcase) error {
	c := world
	var err error
	switch rc.comm {
	case "dup":
		c, err = world.Dup(ctx)
	case "split":
		c, err = world.Split(ctx, world.Rank()%2, -world.Rank())
	}
	if err != nil {
		return err
	}
	switch rc.kind {
	case "float64":
		return randomNum(ctx, c, rc, func(v int) float64 { return float64(v) }, Min[float64], Max[float64])
	case "float32":
		return randomNum(ctx, c, rc, func(v int) float32 { return float32(v) }, Min[float32], Max[float32])
	case "int32":
		return randomNum(ctx, c, rc, func(v int) int32 { return int32(v) }, Min[int32], Max[int32])
	case "int8":
		return randomNum(ctx, c, rc, func(v int) int8 { return int8(v) }, Min[int8], Max[int8])
	case "uint16":
		return randomNum(ctx, c, rc, func(v int) uint16 { return uint16(v) }, Min[uint16], Max[uint16])
	case "complex128":
		return randomNum(ctx, c, rc, func(v int) complex128 { return complex(float64(v), float64(v%3)) }, nil, nil)
	case "point":
		return randomAny(ctx, c, rc, func(v int) point { return point{v, -v, pointNames[(v%5+5)%5]} })
	}
	return fmt.Errorf("unknown kind %q", rc.kind)
}

// rdata is rank r's data in case rc: random small integers (exact in every
// kind and order), drawn from the case's seed and r.
func rdata[T any](rc rcase, of func(int) T, r, l int) []T {
	rng := rand.New(rand.NewPCG(rc.seed, uint64(r)+1))
	xs := make([]T, l)
	for i := range xs {
		xs[i] = of(rng.IntN(5) - 2)
	}
	return xs
}

// partLen is rank r's length in a Gather or Allgather.
func (rc rcase) partLen(r int) int {
	if rc.lenRanks {
		return (rc.length + r*7) % (rc.length + 3)
	}
	return rc.length
}

func randomNum[T mpi.Number](ctx context.Context, c *mpi.Comm, rc rcase, of func(int) T, minOp, maxOp Op[T]) error {
	op := map[string]Op[T]{"sum": Sum[T], "prod": Prod[T], "min": minOp, "max": maxOp}[rc.op]
	n, me, l := c.Size(), c.Rank(), rc.length
	serial := func(ranks int) []T {
		acc := rdata(rc, of, 0, l)
		for r := 1; r < ranks; r++ {
			op(acc, rdata(rc, of, r, l))
		}
		return acc
	}
	root := rc.root % n
	switch rc.coll {
	case "Reduce":
		got, err := Reduce(ctx, c, root, rdata(rc, of, me, l), op)
		if err != nil {
			return err
		}
		var want []T
		if me == root {
			want = serial(n)
		}
		return expect("reduce", got, want)
	case "Allreduce":
		got, err := Allreduce(ctx, c, rdata(rc, of, me, l), op)
		if err != nil {
			return err
		}
		return expect("allreduce", got, serial(n))
	case "Scan":
		got, err := Scan(ctx, c, rdata(rc, of, me, l), op)
		if err != nil {
			return err
		}
		return expect("scan", got, serial(me+1))
	case "Exscan":
		got, err := Exscan(ctx, c, rdata(rc, of, me, l), op)
		if err != nil {
			return err
		}
		var want []T
		if me > 0 {
			want = serial(me)
		}
		return expect("exscan", got, want)
	}
	return randomAny(ctx, c, rc, of)
}

func randomAny[T comparable](ctx context.Context, c *mpi.Comm, rc rcase, of func(int) T) error {
	n, me, l := c.Size(), c.Rank(), rc.length
	root := rc.root % n
	switch rc.coll {
	case "Barrier":
		return Barrier(ctx, c)
	case "Bcast":
		var in []T
		if me == root {
			in = rdata(rc, of, root, l)
		}
		got, err := Bcast(ctx, c, root, in)
		if err != nil {
			return err
		}
		return expect("bcast", got, rdata(rc, of, root, l))
	case "Scatter":
		all := rdata(rc, of, root, l)
		var in []T
		if me == root {
			in = all
		}
		got, err := Scatter(ctx, c, root, in)
		if err != nil {
			return err
		}
		o := offsets(blockCounts(l, n))
		return expect("scatter", got, all[o[me]:o[me+1]])
	case "Scatterv":
		counts := make([]int, n)
		for r := range counts {
			counts[r] = rc.partLen(r)
		}
		o := offsets(counts)
		all := rdata(rc, of, root, o[n])
		var in []T
		var cin []int
		if me == root {
			in, cin = all, counts
		}
		got, err := Scatterv(ctx, c, root, in, cin)
		if err != nil {
			return err
		}
		return expect("scatterv", got, all[o[me]:o[me+1]])
	case "Gather", "Allgather":
		all := []T{}
		for r := range n {
			all = append(all, rdata(rc, of, r, rc.partLen(r))...)
		}
		mine := rdata(rc, of, me, rc.partLen(me))
		if rc.coll == "Allgather" {
			got, err := Allgather(ctx, c, mine)
			if err != nil {
				return err
			}
			return expect("allgather", got, all)
		}
		got, err := Gather(ctx, c, root, mine)
		if err != nil {
			return err
		}
		if me != root {
			all = nil
		}
		return expect("gather", got, all)
	case "Alltoall":
		var in, want []T
		for j := range n {
			in = append(in, rdata(rc, of, me*n+j, l)...)
			want = append(want, rdata(rc, of, j*n+me, l)...)
		}
		got, err := Alltoall(ctx, c, in)
		if err != nil {
			return err
		}
		if want == nil {
			want = []T{}
		}
		return expect("alltoall", got, want)
	}
	return errors.New("unknown collective " + rc.coll)
}
