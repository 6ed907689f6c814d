// Command balance measures static against dynamic load balancing with
// package pool, on a workload of uneven tasks: task i sleeps a known time
// cost(i), between -min-ms and -max-ms milliseconds, and one rank (-slow)
// runs -slowdown times slower than the others, as a busy or older node
// would. The same tasks run twice: with pool.Static() (one contiguous block
// per rank, decided up front) and with pool.Map's dynamic default (a rank
// gets more work when it finishes). For each it prints the wall time, its
// ratio to the ideal (the total work divided by the ranks' total speed,
// plus one longest task), each rank's busy time and task count, and the
// imbalance: the largest busy time over the mean.
//
// Each task returns a value computed from its index; rank 0 checks every
// result and that the ranks' task counts add up, and exits non-zero if
// anything is wrong (-wrong i makes task i return a wrong value, to see
// that happen).
//
//	gorun -n 4 ./examples/balance [-tasks 200] [-min-ms 1] [-max-ms 20] [-slow 1] [-slowdown 4] [-chunk k]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

type config struct {
	tasks, minMS, maxMS int
	slow                int
	slowdown            float64
	chunk               int
	wrong               int
}

// cost is task i's time at full speed: a fixed scramble of i into
// [min, max] milliseconds.
func (cfg config) cost(i int) time.Duration {
	h := uint32(i)*2654435761 + 12345
	span := uint32(cfg.maxMS - cfg.minMS + 1)
	return time.Duration(cfg.minMS+int(h>>16%span)) * time.Millisecond
}

// answer is what task i must return.
func answer(i int) int64 { return int64(i)*int64(i) + 7 }

// ideal is the best wall time the workload allows on n ranks.
func (cfg config) ideal(n int) (ideal, work time.Duration) {
	var longest time.Duration
	for i := range cfg.tasks {
		work += cfg.cost(i)
		longest = max(longest, cfg.cost(i))
	}
	speed := float64(n)
	if cfg.slow >= 0 && cfg.slow < n {
		speed += 1/cfg.slowdown - 1
	}
	return time.Duration(float64(work)/speed) + longest, work
}

// outcome is one mode's measurement, on rank 0.
type outcome struct {
	name   string
	wall   time.Duration
	busy   []float64 // seconds, by rank
	counts []int64
	wrong  []string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.tasks, "tasks", 200, "number of tasks")
	flag.IntVar(&cfg.minMS, "min-ms", 1, "shortest task, in milliseconds")
	flag.IntVar(&cfg.maxMS, "max-ms", 20, "longest task, in milliseconds")
	flag.IntVar(&cfg.slow, "slow", 1, "the rank that runs slower (-1: none)")
	flag.Float64Var(&cfg.slowdown, "slowdown", 4, "how many times slower the -slow rank is")
	flag.IntVar(&cfg.chunk, "chunk", 0, "tasks handed out at a time in the dynamic run (0: pool's default)")
	flag.IntVar(&cfg.wrong, "wrong", -1, "make this task return a wrong value (to see the check fail)")
	flag.Parse()
	if cfg.tasks < 0 || cfg.minMS < 0 || cfg.maxMS < cfg.minMS || cfg.slowdown < 1 || cfg.chunk < 0 {
		fmt.Fprintln(os.Stderr, "balance: need -tasks >= 0, 0 <= -min-ms <= -max-ms, -slowdown >= 1, -chunk >= 0")
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()

	var dynOpts []pool.Option
	if cfg.chunk > 0 {
		dynOpts = append(dynOpts, pool.Chunk(cfg.chunk))
	}
	st, err := measure(ctx, world, cfg, "static", pool.Static())
	if err != nil {
		fail(err)
	}
	dyn, err := measure(ctx, world, cfg, "dynamic", dynOpts...)
	if err != nil {
		fail(err)
	}
	if world.Rank() != 0 {
		return
	}

	n := world.Size()
	ideal, work := cfg.ideal(n)
	slow := "no rank slower"
	if cfg.slow >= 0 && cfg.slow < n {
		slow = fmt.Sprintf("rank %d %gx slower", cfg.slow, cfg.slowdown)
	}
	fmt.Printf("balance: %d tasks of %d-%d ms (%.3fs of work), %d ranks, %s; ideal %.3fs (work / total speed + longest task)\n",
		cfg.tasks, cfg.minMS, cfg.maxMS, work.Seconds(), n, slow, ideal.Seconds())
	fmt.Printf("%-8s %9s %8s %10s  %-s\n", "mode", "wall (s)", "x ideal", "imbalance", "busy (s) / tasks, by rank")
	bad := false
	for _, o := range []outcome{st, dyn} {
		fmt.Printf("%-8s %9.3f %8.2f %10.2f  %s\n", o.name, o.wall.Seconds(), o.wall.Seconds()/ideal.Seconds(), imbalance(o.busy), perRank(o))
		for _, w := range o.wrong {
			fmt.Fprintf(os.Stderr, "balance: %s: %s\n", o.name, w)
			bad = true
		}
	}
	if bad {
		fmt.Fprintln(os.Stderr, "balance: WRONG results (above)")
		os.Exit(1)
	}
	fmt.Printf("balance: OK: %d tasks in each mode, every result right; dynamic %.2fx the ideal, static %.2fx\n",
		cfg.tasks, dyn.wall.Seconds()/ideal.Seconds(), st.wall.Seconds()/ideal.Seconds())
}

// measure runs the workload once with opts, and returns on rank 0 what it
// took and what is wrong with the results.
func measure(ctx context.Context, c *mpi.Comm, cfg config, name string, opts ...pool.Option) (outcome, error) {
	var in []int
	if c.Rank() == 0 {
		in = make([]int, cfg.tasks)
		for i := range in {
			in[i] = i
		}
	}
	var busy time.Duration
	var count int64
	if err := collectives.Barrier(ctx, c); err != nil {
		return outcome{}, err
	}
	start := time.Now()
	results, err := pool.Map(ctx, c, in, func(ctx context.Context, i int) (int64, error) {
		t0 := time.Now()
		d := cfg.cost(i)
		if c.Rank() == cfg.slow {
			d = time.Duration(float64(d) * cfg.slowdown)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		busy += time.Since(t0)
		count++
		if i == cfg.wrong {
			return answer(i) + 1, nil
		}
		return answer(i), nil
	}, opts...)
	if err != nil {
		return outcome{}, fmt.Errorf("%s: %w", name, err)
	}
	wall := time.Since(start)
	busies, err := collectives.Gather(ctx, c, 0, []float64{busy.Seconds()})
	if err != nil {
		return outcome{}, err
	}
	counts, err := collectives.Gather(ctx, c, 0, []int64{count})
	if err != nil {
		return outcome{}, err
	}
	o := outcome{name: name, wall: wall, busy: busies, counts: counts}
	if c.Rank() != 0 {
		return o, nil
	}
	if len(results) != cfg.tasks {
		o.wrong = append(o.wrong, fmt.Sprintf("%d results for %d tasks", len(results), cfg.tasks))
	}
	for i, v := range results {
		if v != answer(i) {
			o.wrong = append(o.wrong, fmt.Sprintf("task %d returned %d, want %d", i, v, answer(i)))
		}
	}
	var total int64
	for _, k := range counts {
		total += k
	}
	if total != int64(cfg.tasks) {
		o.wrong = append(o.wrong, fmt.Sprintf("the ranks ran %d tasks in all, want %d (each once)", total, cfg.tasks))
	}
	return o, nil
}

// imbalance is the largest busy time over the mean (1: perfectly even).
func imbalance(busy []float64) float64 {
	var sum, hi float64
	for _, b := range busy {
		sum += b
		hi = max(hi, b)
	}
	if sum == 0 {
		return 1
	}
	return hi / (sum / float64(len(busy)))
}

func perRank(o outcome) string {
	var parts []string
	for r := range o.busy {
		parts = append(parts, fmt.Sprintf("%.3f/%d", o.busy[r], o.counts[r]))
	}
	return strings.Join(parts, " ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "balance:", err)
	os.Exit(1)
}
