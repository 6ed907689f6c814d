// Command collectives times collective operations the way the OSU
// micro-benchmarks do: each rank times every call on its own, with a
// Barrier (not timed) between calls, and rank 0 prints the average over the
// ranks of their mean time per call, with the smallest and largest mean.
//
//	gorun -n 8 ./bench/collectives -op allreduce -count 1000000
//	gorun -n 8 ./bench/collectives -op bcast -bytes 8388608
//	gorun -n 8 ./bench/collectives -op barrier
//	gorun -n 8 ./bench/collectives -op bcast -single-copy=false -multicast=false
//
// A sweep times every operation named (-op all: barrier, bcast, bcast_into,
// scatter, gather, allgather, alltoall, reduce, allreduce, allreduce_into,
// reduce_scatter, scan) at
// every size of -sizes (lo:hi doubles from lo to hi; or a list), and prints
// a table per operation, as osu_allreduce and its siblings do:
//
//	gorun -n 8 ./bench/collectives -op all -sizes 8:8388608
//
// A size is in bytes, as OSU counts it: what the root sends (bcast), what
// each rank gets or gives (scatter, gather, allgather), what each rank sends
// to each other (alltoall), each rank's vector of float64 summed
// (reduce, allreduce, scan), and the whole vector that is summed and cut
// among the ranks (reduce_scatter). Each size makes at most -iters timed
// calls, and no more than fit in -budget by the time of the warm-up calls
// (-budget 0: exactly -iters).
//
// Every size timed ends in a machine-readable line:
//
//	result op=bcast n=8 size=8388608 iters=20 avg_us=... min_us=... max_us=...
//
// testdata/sweep.c prints the same lines for Open MPI's own collectives;
// BenchmarkSweep runs both and prints the two side by side, with their
// ratio per size. The program checks the results of the last call of each
// size and exits non-zero if they are wrong.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

// sweepOps are the operations of -op all, in the order they are timed.
var sweepOps = []string{"barrier", "bcast", "bcast_into", "scatter", "gather", "allgather", "alltoall", "reduce", "allreduce", "allreduce_into", "reduce_scatter", "scan"}

// reductions are the operations whose size is a vector of float64.
var reductions = []string{"reduce", "allreduce", "allreduce_into", "reduce_scatter", "scan", "allreduce+compute", "iallreduce+compute"}

func main() {
	op := flag.String("op", "barrier", "the operations, comma-separated, or all: "+strings.Join(sweepOps, ", ")+"; or allreduce+compute, iallreduce+compute")
	sizes := flag.String("sizes", "", "the sizes in bytes: lo:hi (doubling from lo to hi) or a comma-separated list; default -bytes, or -count float64 for the reductions")
	bytes := flag.Int("bytes", 8<<20, "without -sizes: the size of bcast, scatter, gather, allgather, alltoall")
	count := flag.Int("count", 1_000_000, "without -sizes: float64 elements per rank of the reductions")
	iters := flag.Int("iters", 100, "timed calls per size, at most")
	budget := flag.Duration("budget", 0, "time per size: fewer timed calls than -iters where they would take longer, by the warm-up calls' time (0: exactly -iters)")
	warmup := flag.Int("warmup", 3, "untimed calls first, per size")
	profile := flag.String("cpuprofile", "", "write rank 0's CPU profile of the timed calls to this file")
	compute = flag.Duration("compute", 50*time.Millisecond, "allreduce+compute, iallreduce+compute: the work beside each Allreduce")
	singleCopy := flag.Bool("single-copy", true, "let ranks of one machine copy large messages out of each other's memory (mpi.WithSingleCopy)")
	multicast := flag.Bool("multicast", true, "let the bus fan one publish out to every rank (mpi.WithMulticast)")
	flag.Parse()
	if *iters < 1 || *warmup < 0 || *bytes < 0 || *count < 0 || *budget < 0 {
		fail(errors.New("-iters must be at least 1, and -warmup, -bytes, -count, -budget not negative"))
	}
	ops, err := parseOps(*op)
	if err != nil {
		fail(err)
	}
	var list []int
	if *sizes != "" {
		if list, err = parseSizes(*sizes); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	world, err := mpi.Init(ctx, mpi.WithSingleCopy(*singleCopy), mpi.WithMulticast(*multicast))
	if err != nil {
		fail(err)
	}
	if *profile != "" && world.Rank() == 0 {
		f, err := os.Create(*profile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer f.Close()
	}
	t := timing{iters: *iters, warmup: *warmup, budget: *budget}
	for _, op := range ops {
		opSizes := list
		if opSizes == nil {
			opSizes = []int{*bytes}
			if slices.Contains(reductions, op) {
				opSizes = []int{*count * 8}
			}
		}
		if err = sweep(ctx, world, op, opSizes, t); err != nil {
			break
		}
	}
	pprof.StopCPUProfile()
	world.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "collectives: rank %d: %v\n", world.Rank(), err)
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "collectives:", err)
	os.Exit(2)
}

// parseOps reads -op.
func parseOps(s string) ([]string, error) {
	if s == "all" {
		return sweepOps, nil
	}
	ops := strings.Split(s, ",")
	for _, op := range ops {
		if !slices.Contains(sweepOps, op) && !slices.Contains(reductions, op) {
			return nil, fmt.Errorf("-op %q: want all, or some of %s, allreduce+compute, iallreduce+compute", op, strings.Join(sweepOps, ", "))
		}
	}
	return ops, nil
}

// maxSize bounds a size of -sizes: 1 GiB (alltoall holds n times it).
const maxSize = 1 << 30

// parseSizes reads -sizes: lo:hi, every power of two times lo up to hi; or
// a comma-separated list.
func parseSizes(s string) ([]int, error) {
	bad := fmt.Errorf("-sizes %q: want lo:hi (as 8:8388608) or a list of sizes in bytes (as 8,1024,65536), each at most %d", s, maxSize)
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 1 || b < a || b > maxSize {
			return nil, bad
		}
		var list []int
		for x := a; x <= b; x *= 2 {
			list = append(list, x)
		}
		return list, nil
	}
	var list []int
	for f := range strings.SplitSeq(s, ",") {
		x, err := strconv.Atoi(f)
		if err != nil || x < 0 || x > maxSize {
			return nil, bad
		}
		list = append(list, x)
	}
	return list, nil
}

// timing is how many calls each size makes.
type timing struct {
	iters, warmup int
	budget        time.Duration
}

// sweep times op at each size and prints its table; a barrier has one
// row, of size 0.
func sweep(ctx context.Context, c *mpi.Comm, op string, sizes []int, t timing) error {
	if op == "barrier" {
		sizes = []int{0}
	}
	if c.Rank() == 0 {
		fmt.Printf("# %s, n=%d: %s\n", op, c.Size(), sizeMeaning(op))
		fmt.Printf("# %-10s %12s %12s %12s %8s\n", "size(B)", "avg(us)", "min(us)", "max(us)", "iters")
	}
	for _, size := range sizes {
		call, check, moved, err := operation(c, op, size)
		if err != nil {
			return err
		}
		s, err := measure(ctx, c, call, t)
		if err != nil {
			return fmt.Errorf("%s of %d bytes: %w", op, size, err)
		}
		if err := check(); err != nil {
			return fmt.Errorf("%s of %d bytes: %w", op, size, err)
		}
		if c.Rank() == 0 {
			fmt.Printf("  %-10d %12.2f %12.2f %12.2f %8d\n", moved, s.avg, s.min, s.max, s.iters)
			fmt.Printf("result op=%s n=%d size=%d iters=%d avg_us=%.2f min_us=%.2f max_us=%.2f\n",
				op, c.Size(), moved, s.iters, s.avg, s.min, s.max)
		}
	}
	return nil
}

// sizeMeaning says what a size counts for op.
func sizeMeaning(op string) string {
	switch op {
	case "barrier":
		return "no data"
	case "bcast":
		return "bytes the root sends"
	case "bcast_into":
		return "bytes the root sends, into each rank's buffer (BcastInto, as MPI_Bcast)"
	case "scatter":
		return "bytes each rank gets from the root"
	case "gather":
		return "bytes each rank gives the root"
	case "allgather":
		return "bytes each rank gives"
	case "alltoall":
		return "bytes each rank sends each rank"
	case "reduce_scatter":
		return "bytes of float64 summed, cut among the ranks"
	}
	return "bytes of float64 per rank, summed"
}

// stats is a size's timing: the timed calls, the average over the ranks
// of their mean time per call, and the smallest and largest mean, in us.
type stats struct {
	iters         int
	avg, min, max float64
}

// measure times call: t.warmup untimed calls, then the timed ones, each
// after a Barrier. Rank 0 decides how many from its warm-up calls' time,
// so that every rank makes as many.
func measure(ctx context.Context, c *mpi.Comm, call func(context.Context) error, t timing) (stats, error) {
	timed := func(k int) (time.Duration, error) {
		var total time.Duration
		for range k {
			if err := collectives.Barrier(ctx, c); err != nil {
				return 0, err
			}
			start := time.Now()
			if err := call(ctx); err != nil {
				return 0, err
			}
			total += time.Since(start)
		}
		return total, nil
	}
	warm, err := timed(t.warmup)
	if err != nil {
		return stats{}, err
	}
	iters := t.iters
	if t.budget > 0 && t.warmup > 0 {
		if per := warm / time.Duration(t.warmup); per > 0 {
			iters = int(min(int64(t.iters), max(1, int64(t.budget/per))))
		}
		got, err := collectives.Bcast(ctx, c, 0, []int64{int64(iters)})
		if err != nil {
			return stats{}, err
		}
		iters = int(got[0])
	}
	total, err := timed(iters)
	if err != nil {
		return stats{}, err
	}
	mean := float64(total.Nanoseconds()) / float64(iters) / 1e3
	means, err := collectives.Gather(ctx, c, 0, []float64{mean})
	if err != nil {
		return stats{}, err
	}
	s := stats{iters: iters}
	if c.Rank() == 0 {
		s.min, s.max = slices.Min(means), slices.Max(means)
		for _, m := range means {
			s.avg += m / float64(len(means))
		}
	}
	return s, nil
}

// reduceInput is a rank's vector in the reductions: element i is
// rank + i%3, so that the sum over n ranks is n(n-1)/2 + n(i%3).
func reduceInput(rank, count int) []float64 {
	xs := make([]float64, count)
	for i := range xs {
		xs[i] = float64(rank + i%3)
	}
	return xs
}

// checkSum checks got, the sum over ranks lo to hi of reduceInput's
// elements from element off on.
func checkSum(op string, got []float64, want, off, lo, hi int) error {
	if len(got) != want {
		return fmt.Errorf("%s: got %d elements, want %d", op, len(got), want)
	}
	k := hi - lo + 1
	for i, x := range got {
		if w := float64((lo+hi)*k/2 + k*((off+i)%3)); x != w {
			return fmt.Errorf("%s: element %d is %v, want %v", op, i, x, w)
		}
	}
	return nil
}

// compute is the work beside an Allreduce in the +compute operations.
var compute *time.Duration

// work computes for d: a loop that does not need the network.
func work(d time.Duration) {
	x, start := 1.0, time.Now()
	for time.Since(start) < d {
		for range 1000 {
			x = x*1.000001 + 1e-9
		}
	}
	sink = x
}

var sink float64

// pattern is the data rank sends in the operations that move bytes: byte
// i is rank*31 + i*7 (mod 256), so that a byte out of place shows.
func pattern(rank, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rank*31 + i*7)
	}
	return b
}

// checkBlocks checks got, blocks of size bytes: block j as pattern(from(j))
// makes it, from byte off(j) of that rank's data.
func checkBlocks(op string, got []byte, blocks, size int, from, off func(j int) int) error {
	if len(got) != blocks*size {
		return fmt.Errorf("%s: got %d bytes, want %d", op, len(got), blocks*size)
	}
	for j := range blocks {
		r, o := from(j), off(j)
		for i, b := range got[j*size : (j+1)*size] {
			if want := byte(r*31 + (o+i)*7); b != want {
				return fmt.Errorf("%s: byte %d of block %d is %d, want %d", op, i, j, b, want)
			}
		}
	}
	return nil
}

// operation returns the call of op to time for size (see the package
// doc), a check of its last result, and the size it moves, in bytes.
func operation(c *mpi.Comm, op string, size int) (func(context.Context) error, func() error, int, error) {
	n, rank := c.Size(), c.Rank()
	ok := func() error { return nil }
	ranks := func(j int) int { return j }
	zero := func(int) int { return 0 }
	switch op {
	case "barrier":
		return func(ctx context.Context) error { return collectives.Barrier(ctx, c) }, ok, 0, nil
	case "bcast":
		data := pattern(0, size)
		if rank != 0 {
			data = nil
		}
		var got []byte
		return func(ctx context.Context) (err error) {
			got, err = collectives.Bcast(ctx, c, 0, data)
			return err
		}, func() error { return checkBlocks(op, got, 1, size, zero, zero) }, size, nil
	case "bcast_into":
		buf := make([]byte, size)
		if rank == 0 {
			buf = pattern(0, size)
		}
		return func(ctx context.Context) error {
			return collectives.BcastInto(ctx, c, 0, buf)
		}, func() error { return checkBlocks(op, buf, 1, size, zero, zero) }, size, nil
	case "scatter":
		var data []byte
		if rank == 0 {
			data = pattern(0, n*size)
		}
		var got []byte
		return func(ctx context.Context) (err error) {
				got, err = collectives.Scatter(ctx, c, 0, data)
				return err
			}, func() error {
				return checkBlocks(op, got, 1, size, zero, func(int) int { return rank * size })
			}, size, nil
	case "gather":
		data := pattern(rank, size)
		var got []byte
		return func(ctx context.Context) (err error) {
				got, err = collectives.Gather(ctx, c, 0, data)
				return err
			}, func() error {
				if rank != 0 {
					return nil
				}
				return checkBlocks(op, got, n, size, ranks, zero)
			}, size, nil
	case "allgather":
		data := pattern(rank, size)
		var got []byte
		return func(ctx context.Context) (err error) {
			got, err = collectives.Allgather(ctx, c, data)
			return err
		}, func() error { return checkBlocks(op, got, n, size, ranks, zero) }, size, nil
	case "alltoall":
		data := pattern(rank, n*size)
		var got []byte
		return func(ctx context.Context) (err error) {
				got, err = collectives.Alltoall(ctx, c, data)
				return err
			}, func() error {
				return checkBlocks(op, got, n, size, ranks, func(int) int { return rank * size })
			}, size, nil
	case "reduce", "allreduce", "allreduce_into", "scan", "allreduce+compute", "iallreduce+compute":
		k := max(1, size/8)
		xs := reduceInput(rank, k)
		var got []float64
		var call func(context.Context) error
		switch op {
		case "reduce":
			call = func(ctx context.Context) (err error) {
				got, err = collectives.Reduce(ctx, c, 0, xs, collectives.Sum)
				return err
			}
		case "allreduce":
			call = func(ctx context.Context) (err error) {
				got, err = collectives.Allreduce(ctx, c, xs, collectives.Sum)
				return err
			}
		case "allreduce_into":
			got = make([]float64, len(xs))
			call = func(ctx context.Context) error {
				return collectives.AllreduceInto(ctx, c, xs, got, collectives.Sum)
			}
		case "scan":
			call = func(ctx context.Context) (err error) {
				got, err = collectives.Scan(ctx, c, xs, collectives.Sum)
				return err
			}
		case "allreduce+compute":
			// An Allreduce and *compute of work that does not need its
			// result: one after the other, or overlapped (Iallreduce, the
			// work, Wait).
			call = func(ctx context.Context) (err error) {
				got, err = collectives.Allreduce(ctx, c, xs, collectives.Sum)
				work(*compute)
				return err
			}
		default:
			call = func(ctx context.Context) (err error) {
				req := collectives.Iallreduce(c, xs, collectives.Sum)
				work(*compute)
				got, err = req.Wait(ctx)
				return err
			}
		}
		hi := n - 1
		if op == "scan" {
			hi = rank
		}
		return call, func() error {
			if op == "reduce" && rank != 0 {
				return nil
			}
			return checkSum(op, got, k, 0, 0, hi)
		}, k * 8, nil
	case "reduce_scatter":
		k := max(1, size/8/n)
		xs := reduceInput(rank, k*n)
		var got []float64
		return func(ctx context.Context) (err error) {
			got, err = collectives.ReduceScatterBlock(ctx, c, xs, collectives.Sum)
			return err
		}, func() error { return checkSum(op, got, k, rank*k, 0, n-1) }, k * n * 8, nil
	}
	return nil, nil, 0, fmt.Errorf("-op %q: want all, or some of %s, allreduce+compute, iallreduce+compute", op, strings.Join(sweepOps, ", "))
}
