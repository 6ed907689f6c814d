// Command mapprog is the rank program of pool's multi-process tests, run
// under the real gorun.
//
//	map     pool.Map on 0, 1, n-1 and 1000 inputs, of ints and of structs;
//	        rank 0 checks the results (in order, each task run once: the
//	        results name the rank that ran them, and that matches what each
//	        rank counted) and prints "mapprog: OK: ..."
//	fail57  200 tasks, task 57 fails; every rank checks it got a TaskError
//	        for task 57 and the same rank, within a second; rank 0 prints
//	        "mapprog: OK: task 57 failed on rank R ..."
//	panic57 200 tasks, task 57 panics; every rank prints
//	        "mapprog: rank R: <its error>" and checks that it is a TaskError
//	        for task 57 that names the panic, then (after a Barrier) exits 1
//	        with that error
//	        (the job fails, as a Python pool's caller re-raises a worker's
//	        exception)
//
// Any check that fails exits 1 with a message on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

type item struct {
	ID   int
	Name string
}

type result struct {
	ID   int
	Name string
	Rank int
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()
	mode := "map"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "map":
		err = mapCases(ctx, world)
	case "fail57":
		err = fail57(ctx, world)
	case "panic57":
		err = panic57(ctx, world)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fail(err)
	}
}

func mapCases(ctx context.Context, c *mpi.Comm) error {
	n := c.Size()
	var ks []int
	for _, k := range []int{0, 1, n - 1, 1000} {
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	for _, k := range ks {
		// ints: raw bytes
		var in []int
		if c.Rank() == 0 {
			for i := range k {
				in = append(in, i)
			}
		}
		ran := 0
		got, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			ran++
			return 3*x + 1, nil
		})
		if err != nil {
			return fmt.Errorf("ints, %d inputs: %w", k, err)
		}
		total, err := collectives.Reduce(ctx, c, 0, []int{ran}, collectives.Sum)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			if len(got) != k || total[0] != k {
				return fmt.Errorf("ints, %d inputs: %d results, %d tasks run", k, len(got), total[0])
			}
			for i, v := range got {
				if v != 3*i+1 {
					return fmt.Errorf("ints, %d inputs: result %d is %d, want %d", k, i, v, 3*i+1)
				}
			}
		} else if got != nil {
			return fmt.Errorf("ints: rank %d got results", c.Rank())
		}

		// structs: gob
		var items []item
		if c.Rank() == 0 {
			for i := range k {
				items = append(items, item{ID: i, Name: fmt.Sprint("n", i)})
			}
		}
		ran = 0
		res, err := pool.Map(ctx, c, items, func(ctx context.Context, x item) (result, error) {
			ran++
			return result{ID: x.ID, Name: x.Name + "!", Rank: c.Rank()}, nil
		})
		if err != nil {
			return fmt.Errorf("structs, %d inputs: %w", k, err)
		}
		counts, err := collectives.Gather(ctx, c, 0, []int{ran})
		if err != nil {
			return err
		}
		if c.Rank() != 0 {
			continue
		}
		if len(res) != k {
			return fmt.Errorf("structs, %d inputs: %d results", k, len(res))
		}
		named := make([]int, n)
		for i, r := range res {
			if r.ID != i || r.Name != fmt.Sprint("n", i, "!") || r.Rank < 0 || r.Rank >= n {
				return fmt.Errorf("structs, %d inputs: result %d is %+v", k, i, r)
			}
			named[r.Rank]++
		}
		if !slices.Equal(named, counts) {
			return fmt.Errorf("structs, %d inputs: ranks ran %v tasks, the results name them %v times", k, counts, named)
		}
		if k == 1000 {
			fmt.Printf("mapprog: 1000 structs, tasks per rank %v\n", counts)
		}
	}
	if c.Rank() == 0 {
		fmt.Printf("mapprog: OK: %d ranks, inputs %v, ints and structs in order, each task run once\n", n, ks)
	}
	return nil
}

func fail57(ctx context.Context, c *mpi.Comm) error {
	var in []int
	if c.Rank() == 0 {
		for i := range 200 {
			in = append(in, i)
		}
	}
	var failedAt int64 // unix ns, on the rank that ran task 57
	_, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
		if x == 57 {
			failedAt = time.Now().UnixNano()
			return 0, errors.New("task 57 is broken")
		}
		select {
		case <-time.After(2 * time.Millisecond):
			return x, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	returned := time.Now().UnixNano()
	var te *pool.TaskError
	if !errors.As(err, &te) || te.Index != 57 || te.Err.Error() != "task 57 is broken" {
		return fmt.Errorf("rank %d: %v, want a TaskError for task 57", c.Rank(), err)
	}
	// The call failed, the communicator did not: compare notes on rank 0.
	// Every rank is on this machine, so their clocks agree.
	notes, err := collectives.Gather(ctx, c, 0, []int64{int64(te.Rank), failedAt, returned})
	if err != nil || c.Rank() != 0 {
		return err
	}
	var failed int64
	for r := range c.Size() {
		if notes[3*r+1] != 0 {
			failed = notes[3*r+1]
			if int64(r) != notes[3*te.Rank] || r != te.Rank {
				return fmt.Errorf("task 57 ran on rank %d, rank 0's error says rank %d", r, te.Rank)
			}
		}
	}
	var slowest time.Duration
	for r := range c.Size() {
		if notes[3*r] != int64(te.Rank) {
			return fmt.Errorf("rank %d says task 57 ran on rank %d, rank 0 says %d", r, notes[3*r], te.Rank)
		}
		slowest = max(slowest, time.Duration(notes[3*r+2]-failed))
	}
	if slowest > time.Second {
		return fmt.Errorf("the last rank returned %v after task 57 failed, want within a second", slowest)
	}
	fmt.Printf("mapprog: OK: task 57 failed on rank %d; every rank returned that error within %v\n", te.Rank, slowest.Round(time.Microsecond))
	return nil
}

func panic57(ctx context.Context, c *mpi.Comm) error {
	var in []int
	if c.Rank() == 0 {
		for i := range 200 {
			in = append(in, i)
		}
	}
	_, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
		if x == 57 {
			panic(fmt.Sprintf("task %d exploded", x))
		}
		return x, nil
	})
	fmt.Printf("mapprog: rank %d: %v\n", c.Rank(), err)
	// Every rank has said what it got before any fails the job.
	if berr := collectives.Barrier(ctx, c); berr != nil {
		return berr
	}
	var te *pool.TaskError
	if !errors.As(err, &te) || te.Index != 57 || !strings.HasPrefix(te.Err.Error(), "panic: task 57 exploded (at main.go:") {
		return fmt.Errorf("rank %d: %v, want a TaskError for task 57's panic", c.Rank(), err)
	}
	return err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mapprog:", err)
	os.Exit(1)
}
