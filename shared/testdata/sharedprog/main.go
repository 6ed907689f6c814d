// Command sharedprog is run by shared's multi-process tests under the real
// gorun. "add N": every rank adds 1 to one shared.Value N times; rank 0
// checks the total and that the old values returned are all distinct.
// "passive": rank 1 computes for 2 s without calling gorun while the other
// ranks Get from its window; each says how long its Gets took and whether
// they ended before rank 1's computing did. "bigput MiB": rank 0 Puts MiB
// MiB into the last rank's window, and rank 1 Gets it back and compares.
// Each prints an OK line.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/shared"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sharedprog:", err)
		os.Exit(1)
	}
	switch {
	case len(os.Args) == 3 && os.Args[1] == "add":
		var n int
		if n, err = strconv.Atoi(os.Args[2]); err == nil {
			err = add(ctx, world, n)
		}
	case len(os.Args) == 2 && os.Args[1] == "passive":
		err = passive(ctx, world)
	case len(os.Args) == 3 && os.Args[1] == "bigput":
		var mib int
		if mib, err = strconv.Atoi(os.Args[2]); err == nil {
			err = bigPut(ctx, world, mib)
		}
	default:
		err = fmt.Errorf("usage: sharedprog add N | passive | bigput MiB")
	}
	world.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sharedprog: rank %d: %v\n", world.Rank(), err)
		os.Exit(1)
	}
}

func add(ctx context.Context, c *mpi.Comm, n int) error {
	v, err := shared.NewValue[int64](ctx, c)
	if err != nil {
		return err
	}
	start := time.Now()
	olds := make([]int64, n)
	for i := range olds {
		if olds[i], err = v.Add(ctx, 1); err != nil {
			return err
		}
	}
	took := time.Since(start)
	all, err := collectives.Gather(ctx, c, 0, olds)
	if err != nil {
		return err
	}
	if err := collectives.Barrier(ctx, c); err != nil {
		return err
	}
	final, err := v.Load(ctx)
	if err != nil {
		return err
	}
	if err := v.Free(ctx); err != nil {
		return err
	}
	if c.Rank() != 0 {
		return nil
	}
	total := int64(c.Size() * n)
	if final != total {
		return fmt.Errorf("final value %d, want %d", final, total)
	}
	seen := make([]bool, total)
	for _, o := range all {
		if o < 0 || o >= total || seen[o] {
			return fmt.Errorf("old value %d returned twice or out of [0, %d)", o, total)
		}
		seen[o] = true
	}
	fmt.Printf("sharedprog: OK: %d ranks, %d adds, final %d, old values distinct (%.1f us per Add on rank 0)\n",
		c.Size(), total, final, float64(took.Microseconds())/float64(n))
	return nil
}

func passive(ctx context.Context, c *mpi.Comm) error {
	w, err := mpi.NewWin[int64](ctx, c, 4)
	if err != nil {
		return err
	}
	if c.Rank() == 1 {
		w.Local()[0] = 42
	}
	if err := w.Fence(ctx); err != nil {
		return err
	}
	var took time.Duration
	var ended int64 // rank 1: when its computing ended, in Unix ns; others: when their Gets did
	if c.Rank() == 1 {
		start, x := time.Now(), 1.0
		for time.Since(start) < 2*time.Second {
			for range 10000 {
				x = x*1.0000001 + 1e-9
			}
		}
		ended = time.Now().UnixNano()
		if x == 0 {
			fmt.Println(x)
		}
	} else {
		start := time.Now()
		buf := make([]int64, 1)
		for range 20 {
			if err := w.Get(ctx, 1, 0, buf); err != nil {
				return err
			}
			if buf[0] != 42 {
				return fmt.Errorf("Get: %d, want 42", buf[0])
			}
		}
		took = time.Since(start)
		ended = time.Now().UnixNano()
	}
	ends, err := collectives.Gather(ctx, c, 0, []int64{ended, int64(took)})
	if err != nil {
		return err
	}
	if err := w.Free(ctx); err != nil {
		return err
	}
	if c.Rank() != 0 {
		return nil
	}
	computed := ends[2]
	var slowest time.Duration
	for r := range c.Size() {
		if r == 1 {
			continue
		}
		if ends[2*r] >= computed {
			return fmt.Errorf("rank %d's Gets ended %v after rank 1 stopped computing", r, time.Duration(ends[2*r]-computed))
		}
		slowest = max(slowest, time.Duration(ends[2*r+1]))
	}
	fmt.Printf("sharedprog: OK: %d ranks, 20 Gets each from computing rank 1 within %v, before it stopped computing\n", c.Size(), slowest.Round(time.Millisecond))
	return nil
}

func bigPut(ctx context.Context, c *mpi.Comm, mib int) error {
	n := mib << 20 / 8
	last := c.Size() - 1
	size := 0
	if c.Rank() == last {
		size = n
	}
	w, err := mpi.NewWin[uint64](ctx, c, size)
	if err != nil {
		return err
	}
	var put time.Duration
	if c.Rank() == 0 {
		data := make([]uint64, n)
		for i := range data {
			data[i] = uint64(i) * 0x9E3779B97F4A7C15
		}
		start := time.Now()
		if err := w.Put(ctx, last, 0, data); err != nil {
			return err
		}
		put = time.Since(start)
	}
	if err := w.Fence(ctx); err != nil {
		return err
	}
	if c.Rank() == 1%c.Size() {
		buf := make([]uint64, n)
		start := time.Now()
		if err := w.Get(ctx, last, 0, buf); err != nil {
			return err
		}
		get := time.Since(start)
		for i, x := range buf {
			if x != uint64(i)*0x9E3779B97F4A7C15 {
				return fmt.Errorf("element %d: %#x, want %#x", i, x, uint64(i)*0x9E3779B97F4A7C15)
			}
		}
		fmt.Printf("sharedprog: OK: %d MiB Put by rank 0 into rank %d's window, Got back by rank %d intact (Get %v)\n",
			mib, last, c.Rank(), get.Round(time.Millisecond))
	}
	if c.Rank() == 0 && put > 0 {
		fmt.Fprintf(os.Stderr, "sharedprog: Put of %d MiB: %v\n", mib, put.Round(time.Millisecond))
	}
	return w.Free(ctx)
}
