// Command workers shows master-worker load balancing (a task farm): rank 0
// hands out tasks of uneven cost one at a time, and whichever worker answers
// first gets the next one, so fast workers and cheap tasks do not wait for
// slow ones.
//
// The tasks are factoring numbers by trial division; their cost depends on
// the size of their second-largest prime factor, so it varies a lot. Rank 0
// sends each worker one task, then loops: Recv(AnySource) a result, send that
// worker the next task, or the stop tag once none is left. Workers Recv a
// task, factor it, and send the factors back. At the end rank 0 factors every
// number itself and checks that the results agree, prints how many tasks each
// worker did, and exits non-zero if any result is wrong. With one rank, rank 0
// does every task itself; with more workers than tasks, the extra workers are
// stopped at once.
//
//	gorun -n 4 ./examples/workers [-tasks 300] [-bits 44] [-seed 1]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
)

// Tags of the master-worker protocol.
const (
	tagTask   = 1 // master to worker: [task index, number]
	tagResult = 2 // worker to master: [task index, prime factors...]
	tagStop   = 3 // master to worker: no more tasks (empty message)
)

func main() {
	ntasks := flag.Int("tasks", 300, "numbers to factor")
	bits := flag.Int("bits", 44, "size of the numbers in bits (2..62); the cost of a task grows as 2^(bits/2)")
	seed := flag.Uint64("seed", 1, "seed of the random numbers")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()

	if *ntasks < 0 || *bits < 2 || *bits > 62 {
		fail(fmt.Errorf("need -tasks >= 0 and -bits in [2, 62]; got -tasks %d -bits %d", *ntasks, *bits))
	}
	if world.Rank() != 0 {
		if err := work(ctx, world); err != nil {
			fail(err)
		}
		return
	}

	tasks := numbers(*ntasks, *bits, *seed)
	start := time.Now()
	results, counts, err := master(ctx, world, tasks)
	if err != nil {
		fail(err)
	}
	elapsed := time.Since(start)

	wrong := 0
	for i, n := range tasks {
		if want := factor(n); !slices.Equal(results[i], want) {
			if wrong < 5 {
				fmt.Fprintf(os.Stderr, "workers: task %d: factors of %d are %v, got %v\n", i, n, want, results[i])
			}
			wrong++
		}
	}
	for r, k := range counts {
		if r > 0 || world.Size() == 1 { // rank 0 works only when alone
			fmt.Printf("workers: rank %d did %d tasks\n", r, k)
		}
	}
	if wrong > 0 {
		fmt.Fprintf(os.Stderr, "workers: WRONG: %d of %d results differ from the serial run\n", wrong, len(tasks))
		os.Exit(1)
	}
	fmt.Printf("workers: OK: %d tasks on %d ranks, every result matches the serial run; %v\n",
		len(tasks), world.Size(), elapsed.Round(time.Microsecond))
}

// master hands out tasks to ranks 1..Size()-1 until every one is done, and
// returns the factors of each task and how many tasks each rank did. In a
// world of one it does them all itself.
func master(ctx context.Context, c *mpi.Comm, tasks []uint64) ([][]uint64, []int, error) {
	results := make([][]uint64, len(tasks))
	counts := make([]int, c.Size())
	if c.Size() == 1 {
		for i, n := range tasks {
			results[i] = factor(n)
		}
		counts[0] = len(tasks)
		return results, counts, nil
	}

	next, busy := 0, 0
	// give sends worker w the next task, or stop when none is left.
	give := func(w int) error {
		if next == len(tasks) {
			return c.Send(ctx, w, tagStop, nil)
		}
		busy++
		next++
		return mpi.SendSlice(ctx, c, w, tagTask, []uint64{uint64(next - 1), tasks[next-1]})
	}
	for w := 1; w < c.Size(); w++ {
		if err := give(w); err != nil {
			return nil, nil, err
		}
	}
	for busy > 0 {
		res, st, err := mpi.RecvSlice[uint64](ctx, c, mpi.AnySource, tagResult)
		if err != nil {
			return nil, nil, err
		}
		busy--
		if len(res) == 0 || res[0] >= uint64(len(tasks)) || results[res[0]] != nil {
			return nil, nil, fmt.Errorf("rank %d sent a bad result %v", st.Source, res)
		}
		results[res[0]] = res[1:]
		counts[st.Source]++
		if err := give(st.Source); err != nil {
			return nil, nil, err
		}
	}
	return results, counts, nil
}

// work receives tasks from rank 0 and answers each with its factors, until
// rank 0 sends the stop tag.
func work(ctx context.Context, c *mpi.Comm) error {
	for {
		task, st, err := mpi.RecvSlice[uint64](ctx, c, 0, mpi.AnyTag)
		if err != nil {
			return err
		}
		if st.Tag == tagStop {
			return nil
		}
		if len(task) != 2 {
			return fmt.Errorf("a task of %d numbers, want 2", len(task))
		}
		if err := mpi.SendSlice(ctx, c, 0, tagResult, append([]uint64{task[0]}, factor(task[1])...)); err != nil {
			return err
		}
	}
}

// numbers returns n random numbers below 2^bits, the same for every seed.
func numbers(n, bits int, seed uint64) []uint64 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	xs := make([]uint64, n)
	for i := range xs {
		xs[i] = 2 + rng.Uint64N(1<<bits-2)
	}
	return xs
}

// factor returns the prime factors of n >= 2 in increasing order, by trial
// division.
func factor(n uint64) []uint64 {
	var fs []uint64
	for n%2 == 0 {
		fs = append(fs, 2)
		n /= 2
	}
	for d := uint64(3); d*d <= n; d += 2 {
		for n%d == 0 {
			fs = append(fs, d)
			n /= d
		}
	}
	if n > 1 {
		fs = append(fs, n)
	}
	return fs
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "workers:", err)
	os.Exit(1)
}
