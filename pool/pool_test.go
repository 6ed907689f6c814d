package pool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/wait"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// item and result are the struct task and result types (they travel with
// gob).
type item struct {
	ID   int
	Name string
	W    []float64
}

type result struct {
	ID    int
	Label string
	Sum   float64
	Rank  int // the rank that ran the task
}

func seq(k int) []int {
	xs := make([]int, k)
	for i := range xs {
		xs[i] = i
	}
	return xs
}

func items(k int) []item {
	xs := make([]item, k)
	for i := range xs {
		xs[i] = item{ID: i, Name: fmt.Sprint("t", i), W: []float64{float64(i), 0.5}}
	}
	return xs
}

// inputCounts is 0, 1, n-1 and 1000, without repeats.
func inputCounts(n int) []int {
	var ks []int
	for _, k := range []int{0, 1, n - 1, 1000} {
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// TestMapOrder: results in input order on rank 0, nil elsewhere, every task
// run exactly once, for ints (raw bytes) and structs (gob).
func TestMapOrder(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8} {
		for _, k := range inputCounts(n) {
			t.Run(fmt.Sprintf("int/n=%d/inputs=%d", n, k), func(t *testing.T) {
				runs := make([]atomic.Int32, k)
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					var in []int
					if c.Rank() == 0 {
						in = seq(k)
					}
					got, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
						runs[x].Add(1)
						return x*x + 1, nil
					})
					if err != nil {
						return err
					}
					if c.Rank() != 0 {
						if got != nil {
							return fmt.Errorf("rank %d got %d results, want nil", c.Rank(), len(got))
						}
						return nil
					}
					if len(got) != k {
						return fmt.Errorf("%d results, want %d", len(got), k)
					}
					for i, v := range got {
						if v != i*i+1 {
							return fmt.Errorf("result %d is %d, want %d", i, v, i*i+1)
						}
					}
					return nil
				})
				for i := range runs {
					if r := runs[i].Load(); r != 1 {
						t.Errorf("task %d ran %d times, want once", i, r)
					}
				}
			})
			t.Run(fmt.Sprintf("struct/n=%d/inputs=%d", n, k), func(t *testing.T) {
				perRank := make([]atomic.Int32, n)
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					var in []item
					if c.Rank() == 0 {
						in = items(k)
					}
					got, err := pool.Map(ctx, c, in, func(ctx context.Context, x item) (result, error) {
						perRank[c.Rank()].Add(1)
						return result{ID: x.ID, Label: strings.ToUpper(x.Name), Sum: x.W[0] + x.W[1], Rank: c.Rank()}, nil
					})
					if err != nil || c.Rank() != 0 {
						return err
					}
					if len(got) != k {
						return fmt.Errorf("%d results, want %d", len(got), k)
					}
					counts := make([]int32, n)
					for i, r := range got {
						if r.ID != i || r.Label != fmt.Sprint("T", i) || r.Sum != float64(i)+0.5 {
							return fmt.Errorf("result %d is %+v", i, r)
						}
						counts[r.Rank]++
					}
					// Every task once: the results name who ran them, and
					// that is what each rank counted.
					for r := range n {
						if got := perRank[r].Load(); got != counts[r] {
							return fmt.Errorf("rank %d ran %d tasks, the results name it %d times", r, got, counts[r])
						}
					}
					if k == 1000 && counts[0] == 0 {
						return fmt.Errorf("rank 0 ran none of 1000 tasks: %v", counts)
					}
					return nil
				})
			})
		}
	}
}

// TestMapUnordered: each sees every index once with its result; rank 0
// only.
func TestMapUnordered(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			const k = 300
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				var in []int
				if c.Rank() == 0 {
					in = seq(k)
				}
				seen := make([]int, k)
				err := pool.MapUnordered(ctx, c, in, func(ctx context.Context, x int) (string, error) {
					return fmt.Sprint("r", x), nil
				}, func(i int, out string) error {
					if c.Rank() != 0 {
						return fmt.Errorf("each called on rank %d", c.Rank())
					}
					if out != fmt.Sprint("r", i) {
						return fmt.Errorf("each(%d, %q)", i, out)
					}
					seen[i]++
					return nil
				})
				if err != nil || c.Rank() != 0 {
					return err
				}
				for i, s := range seen {
					if s != 1 {
						return fmt.Errorf("each saw task %d %d times", i, s)
					}
				}
				return nil
			})
		})
	}
}

// TestMapUnorderedEachError: an error from each ends the call on every
// rank.
func TestMapUnorderedEachError(t *testing.T) {
	errs := make([]error, 4)
	err := mpitest.World(context.Background(), 4, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = seq(500)
		}
		errs[c.Rank()] = pool.MapUnordered(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			time.Sleep(time.Millisecond)
			return x, nil
		}, func(i, out int) error {
			if i == 10 {
				return errors.New("full disk")
			}
			return nil
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "each(10): full disk") {
			t.Errorf("rank %d: %v, want an error naming each(10) and its error", r, err)
		}
		if r > 0 && !errors.Is(err, pool.ErrStopped) {
			t.Errorf("rank %d: %v does not wrap ErrStopped", r, err)
		}
	}
}

var errBoom = errors.New("boom")

// TestTaskError: task 57 of 200 fails; every rank returns a *TaskError
// naming task 57 and the rank that ran it, within a second of the failure,
// even when the other ranks are in the middle of tasks that only end with
// their ctx.
func TestTaskError(t *testing.T) {
	for _, tt := range []struct {
		name    string
		n       int
		opts    []pool.Option
		blocked bool // tasks outside the failing rank's static block wait for ctx
	}{
		{"dynamic/n=1", 1, nil, false},
		{"dynamic/n=2", 2, nil, false},
		{"dynamic/n=5", 5, nil, false},
		{"dynamic/n=8", 8, nil, false},
		{"static/n=2/rank0-fails", 2, []pool.Option{pool.Static()}, true}, // 57 in rank 0's block [0,100)
		{"static/n=4/rank1-fails", 4, []pool.Option{pool.Static()}, true}, // 57 in rank 1's block [50,100)
		{"chunk=10/n=3", 3, []pool.Option{pool.Chunk(10)}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.n
			var ranOn atomic.Int64
			ranOn.Store(-1)
			var failedAt atomic.Int64
			errs := make([]error, n)
			returned := make([]time.Time, n)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // fail, not hang, when the failure does not reach every rank
			defer cancel()
			err := mpitest.World(ctx, n, func(ctx context.Context, c *mpi.Comm) error {
				var in []int
				if c.Rank() == 0 {
					in = seq(200)
				}
				block := 200 / n // every n here divides 200
				_, errs[c.Rank()] = pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
					if x == 57 {
						ranOn.Store(int64(c.Rank()))
						failedAt.Store(time.Now().UnixNano())
						return 0, errBoom
					}
					d := 2 * time.Millisecond
					if tt.blocked && x/block != 57/block {
						d = time.Hour
					} else if tt.blocked {
						d = 0
					}
					select {
					case <-time.After(d):
						return x, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}, tt.opts...)
				returned[c.Rank()] = time.Now()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			who := int(ranOn.Load())
			if who < 0 {
				t.Fatal("task 57 never ran")
			}
			failed := time.Unix(0, failedAt.Load())
			for r, err := range errs {
				var te *pool.TaskError
				if !errors.As(err, &te) || te.Index != 57 || te.Rank != who {
					t.Errorf("rank %d: %v; want a TaskError for task 57 on rank %d", r, err, who)
					continue
				}
				want := fmt.Sprintf("pool: task 57 (on rank %d): boom", who)
				if err.Error() != want {
					t.Errorf("rank %d: %q, want %q", r, err, want)
				}
				if r == who && !errors.Is(err, errBoom) {
					t.Errorf("rank %d, which ran the task: %v does not wrap fn's error", r, err)
				}
				if d := returned[r].Sub(failed); d > time.Second {
					t.Errorf("rank %d returned %v after the failure, want within a second", r, d)
				}
			}
			var slowest time.Duration
			for _, at := range returned {
				slowest = max(slowest, at.Sub(failed))
			}
			t.Logf("task 57 failed on rank %d; the last rank returned %v later", who, slowest)
		})
	}
}

// TestCancel: a ctx that ends on one rank ends the call there with ctx's
// error and on the others with ErrStopped, within a second.
func TestCancel(t *testing.T) {
	for _, canceled := range []int{0, 2} {
		t.Run(fmt.Sprintf("rank%d", canceled), func(t *testing.T) {
			const n = 4
			errs := make([]error, n)
			took := make([]time.Duration, n)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := mpitest.World(ctx, n, func(ctx context.Context, c *mpi.Comm) error {
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				var in []int
				if c.Rank() == 0 {
					in = seq(10000)
				}
				var cancelAt time.Time
				if c.Rank() == canceled {
					cancelAt = time.Now().Add(100 * time.Millisecond)
					time.AfterFunc(100*time.Millisecond, cancel)
				}
				_, errs[c.Rank()] = pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
					select {
					case <-time.After(5 * time.Millisecond):
						return x, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				})
				if c.Rank() == canceled {
					took[c.Rank()] = time.Since(cancelAt)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for r, err := range errs {
				switch {
				case r == canceled && !errors.Is(err, context.Canceled):
					t.Errorf("rank %d (canceled): %v, want context.Canceled", r, err)
				case r != canceled && !errors.Is(err, pool.ErrStopped):
					t.Errorf("rank %d: %v, want ErrStopped", r, err)
				case r != canceled && !strings.Contains(err.Error(), fmt.Sprintf("rank %d: pool: context canceled", canceled)):
					t.Errorf("rank %d: %q does not say rank %d's ctx was canceled", r, err, canceled)
				}
			}
			if took[canceled] > time.Second {
				t.Errorf("the canceled rank returned %v after its cancel", took[canceled])
			}
		})
	}
}

// TestOptions: Chunk hands out aligned chunks of k, Static one block per
// rank, and a bad option is an error on every rank.
func TestOptions(t *testing.T) {
	const k = 203
	ranOn := func(t *testing.T, n int, opts ...pool.Option) []int {
		var mu sync.Mutex
		on := make([]int, k)
		mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
			var in []int
			if c.Rank() == 0 {
				in = seq(k)
			}
			_, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
				mu.Lock()
				on[x] = c.Rank()
				mu.Unlock()
				time.Sleep(100 * time.Microsecond)
				return x, nil
			}, opts...)
			return err
		})
		return on
	}
	t.Run("Chunk(7)", func(t *testing.T) {
		on := ranOn(t, 4, pool.Chunk(7))
		for i := range on {
			if on[i] != on[i-i%7] {
				t.Fatalf("task %d ran on rank %d, task %d (its chunk's first) on rank %d", i, on[i], i-i%7, on[i-i%7])
			}
		}
	})
	t.Run("Static", func(t *testing.T) {
		for _, n := range []int{2, 3, 5} {
			on := ranOn(t, n, pool.Static())
			// Scatter's blocks: lengths differ by at most one, lower ranks longer.
			want := make([]int, 0, k)
			for r := range n {
				for range k/n + min(1, max(0, k%n-r)) {
					want = append(want, r)
				}
			}
			if !slices.Equal(on, want) {
				t.Errorf("n=%d: tasks ran on %v, want %v", n, on, want)
			}
			on = ranOn(t, n, pool.Static(), pool.Chunk(3))
			if !slices.Equal(on, want) {
				t.Errorf("n=%d, Chunk(3): tasks ran on %v, want %v", n, on, want)
			}
		}
	})
	t.Run("Chunk(0)", func(t *testing.T) {
		for _, n := range []int{1, 3} {
			errs := make([]error, n)
			mpitest.World(context.Background(), n, func(ctx context.Context, c *mpi.Comm) error {
				_, errs[c.Rank()] = pool.Map(ctx, c, seq(10), func(ctx context.Context, x int) (int, error) { return x, nil }, pool.Chunk(0))
				return nil
			})
			for r, err := range errs {
				if err == nil || !strings.Contains(err.Error(), "Chunk(0): a chunk is at least 1 task") {
					t.Errorf("n=%d, rank %d: %v, want an error naming Chunk(0)", n, r, err)
				}
			}
		}
	})
	t.Run("nil fn", func(t *testing.T) {
		errs := make([]error, 3)
		mpitest.World(context.Background(), 3, func(ctx context.Context, c *mpi.Comm) error {
			var fn func(context.Context, int) (int, error)
			if c.Rank() == 1 {
				fn = nil // only rank 1 gets it wrong
			} else {
				fn = func(ctx context.Context, x int) (int, error) { return x, nil }
			}
			_, errs[c.Rank()] = pool.Map(ctx, c, seq(10), fn)
			return nil
		})
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "nil fn") {
				t.Errorf("rank %d: %v, want an error naming the nil fn", r, err)
			}
		}
	})
}

// TestDynamicBalances: a rank four times slower gets about a quarter of a
// fast rank's tasks, where Static gives it the same share.
func TestDynamicBalances(t *testing.T) {
	const n, k, slow = 4, 160, 1
	count := func(opts ...pool.Option) []int {
		counts := make([]atomic.Int32, n)
		mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
			var in []int
			if c.Rank() == 0 {
				in = seq(k)
			}
			d := 2 * time.Millisecond
			if c.Rank() == slow {
				d *= 4
			}
			_, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
				counts[c.Rank()].Add(1)
				time.Sleep(d)
				return x, nil
			}, opts...)
			return err
		})
		out := make([]int, n)
		for r := range out {
			out[r] = int(counts[r].Load())
		}
		return out
	}
	dyn := count()
	t.Logf("dynamic: tasks per rank %v (rank %d is 4x slower)", dyn, slow)
	for r := range n {
		if r != slow && 2*dyn[slow] >= dyn[r] {
			t.Errorf("dynamic: the slow rank ran %d tasks, rank %d %d; want under half as many", dyn[slow], r, dyn[r])
		}
	}
	st := count(pool.Static())
	if !slices.Equal(st, []int{k / n, k / n, k / n, k / n}) {
		t.Errorf("static: tasks per rank %v, want %d each", st, k/n)
	}
}

// TestIsolation: the program's own messages never match Map's, before,
// between and after calls, and Map works on a sub-communicator.
func TestIsolation(t *testing.T) {
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() != 0 {
			if err := c.Send(ctx, 0, 0, []byte{byte(c.Rank())}); err != nil {
				return err
			}
		}
		for call := range 3 {
			got, err := pool.Map(ctx, c, seq(50), func(ctx context.Context, x int) (int, error) { return x + call, nil })
			if err != nil {
				return err
			}
			if c.Rank() == 0 && (got[0] != call || got[49] != 49+call) {
				return fmt.Errorf("call %d: results %v", call, got)
			}
		}
		if c.Rank() == 0 {
			for range 3 {
				b, st, err := c.Recv(ctx, mpi.AnySource, mpi.AnyTag)
				if err != nil {
					return err
				}
				if len(b) != 1 || int(b[0]) != st.Source || st.Tag != 0 {
					return fmt.Errorf("program's receive matched %v from rank %d tag %d", b, st.Source, st.Tag)
				}
			}
		}
		sub, err := c.Split(ctx, c.Rank()%2, c.Rank())
		if err != nil {
			return err
		}
		got, err := pool.Map(ctx, sub, seq(20), func(ctx context.Context, x int) (int, error) { return x * 10, nil })
		if err != nil {
			return err
		}
		if sub.Rank() == 0 && (len(got) != 20 || got[19] != 190) {
			return fmt.Errorf("on a sub-communicator: %v", got)
		}
		return nil
	})
}

// TestPrefetch: before any result is back, each rank other than 0 holds
// two chunks (the one it runs and one in reserve), and rank 0 one: the
// first hand-out of 100 one-task chunks on 3 ranks is tasks 0 and 1 to
// rank 1, 2 and 3 to rank 2, and 4 to rank 0.
func TestPrefetch(t *testing.T) {
	var mu sync.Mutex
	on := make([]int, 100)
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = seq(100)
		}
		_, err := pool.Map(ctx, c, in, func(ctx context.Context, x int) (int, error) {
			mu.Lock()
			on[x] = c.Rank()
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return x, nil
		}, pool.Chunk(1))
		return err
	})
	if want := []int{1, 1, 2, 2, 0}; !slices.Equal(on[:5], want) {
		t.Errorf("tasks 0-4 ran on ranks %v, want %v", on[:5], want)
	}
}

// TestNoGoroutineLeft: once the ranks have returned (a normal call, a
// failed one, a canceled one) and the job is shut down, no goroutine that
// Map started is left.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		var in []int
		if c.Rank() == 0 {
			in = seq(300)
		}
		fn := func(ctx context.Context, x int) (int, error) {
			if x == 150 {
				return 0, errBoom
			}
			return x, nil
		}
		if _, err := pool.Map(ctx, c, in, fn); !errors.As(err, new(*pool.TaskError)) {
			return fmt.Errorf("want a TaskError, got %v", err)
		}
		if _, err := pool.Map(ctx, c, in[:min(len(in), 100)], fn); err != nil {
			return err
		}
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := pool.Map(cctx, c, seq(100000), func(ctx context.Context, x int) (int, error) {
			time.Sleep(time.Millisecond)
			return x, nil
		})
		if err == nil {
			return errors.New("the canceled call returned no error")
		}
		return nil
	})
	if !wait.For(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		n := runtime.NumGoroutine()
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
