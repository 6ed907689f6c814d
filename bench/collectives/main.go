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
// The last line is machine-readable:
//
//	result op=bcast n=8 size=8388608 iters=20 avg_us=... min_us=... max_us=...
//
// It checks the results of the last call and exits non-zero if they are
// wrong.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	op := flag.String("op", "barrier", "the operation: barrier, bcast, allreduce, reduce, allgather, alltoall, allreduce+compute, iallreduce+compute")
	bytes := flag.Int("bytes", 8<<20, "bcast, allgather, alltoall: bytes per call (per rank for allgather)")
	count := flag.Int("count", 1_000_000, "allreduce, reduce: float64 elements per rank")
	iters := flag.Int("iters", 100, "timed calls")
	warmup := flag.Int("warmup", 3, "untimed calls first")
	profile := flag.String("cpuprofile", "", "write rank 0's CPU profile of the timed calls to this file")
	compute = flag.Duration("compute", 50*time.Millisecond, "allreduce+compute, iallreduce+compute: the work beside each Allreduce")
	singleCopy := flag.Bool("single-copy", true, "let ranks of one machine copy large messages out of each other's memory (mpi.WithSingleCopy)")
	multicast := flag.Bool("multicast", true, "let the bus fan one publish out to every rank (mpi.WithMulticast)")
	flag.Parse()
	if *iters < 1 || *warmup < 0 || *bytes < 0 || *count < 0 {
		fmt.Fprintln(os.Stderr, "collectives: -iters must be at least 1, and -warmup, -bytes, -count not negative")
		os.Exit(2)
	}
	ctx := context.Background()
	world, err := mpi.Init(ctx, mpi.WithSingleCopy(*singleCopy), mpi.WithMulticast(*multicast))
	if err != nil {
		fmt.Fprintln(os.Stderr, "collectives:", err)
		os.Exit(1)
	}
	if *profile != "" && world.Rank() == 0 {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "collectives:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "collectives:", err)
			os.Exit(1)
		}
		defer f.Close()
	}
	err = run(ctx, world, *op, *bytes, *count, *iters, *warmup)
	pprof.StopCPUProfile()
	world.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "collectives: rank %d: %v\n", world.Rank(), err)
		os.Exit(1)
	}
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

func run(ctx context.Context, c *mpi.Comm, op string, bytes, count, iters, warmup int) error {
	call, check, size, err := operation(c, op, bytes, count)
	if err != nil {
		return err
	}
	var total time.Duration
	for i := range warmup + iters {
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		start := time.Now()
		if err := call(ctx); err != nil {
			return err
		}
		if i >= warmup {
			total += time.Since(start)
		}
	}
	if err := check(); err != nil {
		return err
	}
	mean := float64(total.Nanoseconds()) / float64(iters) / 1e3
	sum, err := collectives.Reduce(ctx, c, 0, []float64{mean}, collectives.Sum)
	if err != nil {
		return err
	}
	lo, err := collectives.Reduce(ctx, c, 0, []float64{mean}, collectives.Min)
	if err != nil {
		return err
	}
	hi, err := collectives.Reduce(ctx, c, 0, []float64{mean}, collectives.Max)
	if err != nil {
		return err
	}
	if c.Rank() == 0 {
		fmt.Printf("result op=%s n=%d size=%d iters=%d avg_us=%.1f min_us=%.1f max_us=%.1f\n",
			op, c.Size(), size, iters, sum[0]/float64(c.Size()), lo[0], hi[0])
	}
	return nil
}

// operation returns the call to time, a check of its last result, and the
// size it moves, in bytes.
func operation(c *mpi.Comm, op string, bytes, count int) (func(context.Context) error, func() error, int, error) {
	n, rank := c.Size(), c.Rank()
	ok := func() error { return nil }
	switch op {
	case "barrier":
		return func(ctx context.Context) error { return collectives.Barrier(ctx, c) }, ok, 0, nil
	case "bcast":
		data := make([]byte, bytes)
		if rank == 0 {
			for i := range data {
				data[i] = byte(i * 7)
			}
		}
		var got []byte
		return func(ctx context.Context) error {
				var err error
				got, err = collectives.Bcast(ctx, c, 0, data)
				return err
			}, func() error {
				for i, b := range got {
					if b != byte(i*7) {
						return fmt.Errorf("bcast: byte %d is %d, want %d", i, b, byte(i*7))
					}
				}
				if len(got) != bytes {
					return fmt.Errorf("bcast: got %d bytes, want %d", len(got), bytes)
				}
				return nil
			}, bytes, nil
	case "allreduce+compute", "iallreduce+compute":
		// An Allreduce and *compute of work that does not need its
		// result: one after the other, or overlapped (Iallreduce, the
		// work, Wait).
		xs := reduceInput(rank, count)
		var got []float64
		return func(ctx context.Context) error {
				var err error
				if op == "allreduce+compute" {
					got, err = collectives.Allreduce(ctx, c, xs, collectives.Sum)
					work(*compute)
					return err
				}
				req := collectives.Iallreduce(c, xs, collectives.Sum)
				work(*compute)
				got, err = req.Wait(ctx)
				return err
			}, func() error {
				if len(got) != count || count > 0 && got[0] != float64(n*(n-1)/2) {
					return fmt.Errorf("%s: got %d elements, want %d", op, len(got), count)
				}
				return nil
			}, count * 8, nil
	case "allreduce", "reduce":
		xs := reduceInput(rank, count)
		var got []float64
		return func(ctx context.Context) error {
				var err error
				if op == "reduce" {
					got, err = collectives.Reduce(ctx, c, 0, xs, collectives.Sum)
				} else {
					got, err = collectives.Allreduce(ctx, c, xs, collectives.Sum)
				}
				return err
			}, func() error {
				if op == "reduce" && rank != 0 {
					return nil
				}
				for i, x := range got {
					if want := float64(n*(n-1)/2 + n*(i%3)); x != want {
						return fmt.Errorf("%s: element %d is %v, want %v", op, i, x, want)
					}
				}
				if len(got) != count {
					return fmt.Errorf("%s: got %d elements, want %d", op, len(got), count)
				}
				return nil
			}, count * 8, nil
	case "allgather":
		data := make([]byte, bytes)
		for i := range data {
			data[i] = byte(rank)
		}
		var got []byte
		return func(ctx context.Context) error {
				var err error
				got, err = collectives.Allgather(ctx, c, data)
				return err
			}, func() error {
				if len(got) != n*bytes {
					return fmt.Errorf("allgather: got %d bytes, want %d", len(got), n*bytes)
				}
				for i, b := range got {
					if b != byte(i/max(bytes, 1)) {
						return fmt.Errorf("allgather: byte %d is %d", i, b)
					}
				}
				return nil
			}, bytes, nil
	case "alltoall":
		k := bytes / n
		data := make([]byte, k*n)
		for i := range data {
			data[i] = byte(rank)
		}
		var got []byte
		return func(ctx context.Context) error {
				var err error
				got, err = collectives.Alltoall(ctx, c, data)
				return err
			}, func() error {
				for i, b := range got {
					if b != byte(i/max(k, 1)) {
						return fmt.Errorf("alltoall: byte %d is %d", i, b)
					}
				}
				return nil
			}, k * n, nil
	}
	return nil, nil, 0, fmt.Errorf("-op %q: want barrier, bcast, allreduce, reduce, allgather or alltoall", op)
}
