package pool_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// The uneven workload of the load-balancing figures: task i sleeps
// cost(i), 1 to 20 ms, and rank slowRank takes slowdown times as long.
const (
	balanceTasks = 200
	balanceRanks = 4
	slowRank     = 1
	slowdown     = 4
)

func cost(i int) time.Duration {
	h := uint32(i)*2654435761 + 12345 // a fixed scramble of i
	return time.Duration(1+h>>16%20) * time.Millisecond
}

// ideal is the best wall time the workload allows: the total work divided
// by the ranks' total speed (a slow rank counts 1/slowdown), plus one
// longest task; here with the nominal costs.
func ideal(tasks, n int) time.Duration {
	var total, longest time.Duration
	for i := range tasks {
		total += cost(i)
		longest = max(longest, cost(i))
	}
	speed := float64(n-1) + 1/float64(slowdown)
	return time.Duration(float64(total)/speed) + longest
}

// balanceRun runs the workload once on goroutine ranks and returns the
// wall time of the Map call on rank 0, and the ideal for the work as it
// was actually done: each task's measured time (divided by slowdown on the
// slow rank), so that sleeps a loaded machine stretches count in the ideal
// too.
func balanceRun(tb testing.TB, opts ...pool.Option) (wall, ideal time.Duration) {
	var mu sync.Mutex
	var work, longest time.Duration
	mpitest.Run(tb, balanceRanks, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = seq(balanceTasks)
		}
		start := time.Now()
		got, err := pool.Map(ctx, c, in, func(ctx context.Context, i int) (int, error) {
			d := cost(i)
			if c.Rank() == slowRank {
				d *= slowdown
			}
			t0 := time.Now()
			time.Sleep(d)
			took := time.Since(t0)
			if c.Rank() == slowRank {
				took /= slowdown
			}
			mu.Lock()
			work += took
			longest = max(longest, took)
			mu.Unlock()
			return 2 * i, nil
		}, opts...)
		if err != nil {
			return err
		}
		if c.Rank() == 0 {
			wall = time.Since(start)
			for i, v := range got {
				if v != 2*i {
					return fmt.Errorf("result %d is %d", i, v)
				}
			}
		}
		return nil
	})
	speed := float64(balanceRanks-1) + 1/float64(slowdown)
	return wall, time.Duration(float64(work)/speed) + longest
}

// TestBalanceNearIdeal: on the uneven workload, with one rank four times
// slower, the dynamic hand-out's wall time is within 1.25x of the ideal, and
// Static's is clearly worse. The tasks sleep, so this is about scheduling,
// not CPU; still, a loaded machine may delay wake-ups, so the dynamic run
// gets three tries and the comparison with Static a wide margin, each run
// measured against the ideal of its own work (Static is expected near
// 2.6x the ideal here).
func TestBalanceNearIdeal(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a few seconds of timing")
	}
	t.Logf("nominal ideal: %v", ideal(balanceTasks, balanceRanks).Round(time.Millisecond))
	best := 1e9
	var bestWall time.Duration
	for try := range 3 {
		wall, id := balanceRun(t)
		x := float64(wall) / float64(id)
		if x < best {
			best, bestWall = x, wall
		}
		t.Logf("dynamic, try %d: %v, %.2fx the ideal %v of the work as done", try+1, wall.Round(time.Millisecond), x, id.Round(time.Millisecond))
		if best <= 1.25 {
			break
		}
	}
	if best > 1.25 {
		t.Errorf("dynamic: at best %.2fx the ideal, want at most 1.25x", best)
	}
	static, id := balanceRun(t, pool.Static())
	staticX := float64(static) / float64(id)
	t.Logf("static: %v, %.2fx the ideal %v (dynamic: %v)", static.Round(time.Millisecond), staticX, id.Round(time.Millisecond), bestWall.Round(time.Millisecond))
	// Each run against the ideal of its own work as done: the two runs may
	// see a machine loaded differently (a raw wall time of one against the
	// other failed so under two CPU hogs).
	if staticX < 1.5*best {
		t.Errorf("static: %.2fx its ideal, not clearly worse than dynamic's %.2fx", staticX, best)
	}
}

// BenchmarkBalance prints the wall time of the uneven workload (200 tasks
// of 1-20 ms on 4 goroutine ranks, one of them 4x slower) with the dynamic
// default and with Static, and its ratio to the ideal.
func BenchmarkBalance(b *testing.B) {
	nominal := ideal(balanceTasks, balanceRanks)
	for _, c := range []struct {
		name string
		opts []pool.Option
	}{{"dynamic", nil}, {"static", []pool.Option{pool.Static()}}, {"chunk=8", []pool.Option{pool.Chunk(8)}}} {
		b.Run(c.name, func(b *testing.B) {
			var walls, ideals time.Duration
			for range b.N {
				w, id := balanceRun(b, c.opts...)
				walls += w
				ideals += id
			}
			wall, id := walls/time.Duration(b.N), ideals/time.Duration(b.N)
			b.ReportMetric(float64(wall.Milliseconds()), "wall-ms")
			b.ReportMetric(float64(nominal.Milliseconds()), "nominal-ideal-ms")
			b.ReportMetric(float64(wall)/float64(nominal), "x-nominal")
			b.ReportMetric(float64(wall)/float64(id), "x-ideal-as-done")
		})
	}
}

// BenchmarkMapOverhead is the cost per task of the hand-out itself: tasks
// that do nothing, on 4 goroutine ranks.
func BenchmarkMapOverhead(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []pool.Option
	}{{"default", nil}, {"chunk=1", []pool.Option{pool.Chunk(1)}}, {"static", []pool.Option{pool.Static()}}} {
		b.Run(c.name, func(b *testing.B) {
			const k = 10000
			mpitest.Run(b, 4, func(ctx context.Context, comm *mpi.Comm) error {
				var in []float64
				if comm.Rank() == 0 {
					in = make([]float64, k)
				}
				for range b.N {
					if _, err := pool.Map(ctx, comm, in, func(ctx context.Context, x float64) (float64, error) { return x + 1, nil }, c.opts...); err != nil {
						return err
					}
				}
				return nil
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*k), "ns/task")
		})
	}
}
