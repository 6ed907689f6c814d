package pool_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// jitter is a task of a random length, up to 200 µs: the tasks finish in
// another order than they were submitted.
func jitter(ctx context.Context, x int) (int, error) {
	time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	return 3*x + 1, nil
}

// TestRunAsCompleted: 10,000 tasks submitted at once, each result once and
// right, through AsCompleted, at n = 1, 3 and 8.
func TestRunAsCompleted(t *testing.T) {
	const k = 10000
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			var ran atomic.Int64
			fn := func(ctx context.Context, x int) (int, error) {
				ran.Add(1)
				return jitter(ctx, x)
			}
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				return pool.Run(ctx, c, fn, func(ctx context.Context, ex *pool.Executor[int, int]) error {
					fs := make([]*pool.Future[int], k)
					for i := range fs {
						fs[i] = ex.Submit(i)
					}
					seen := make([]bool, k)
					count := 0
					for f, err := range ex.AsCompleted(ctx, fs...) {
						if err != nil {
							return err
						}
						out, _ := f.Wait(ctx)
						if i := f.Index(); seen[i] || out != 3*i+1 {
							return fmt.Errorf("task %d: result %d (seen before: %v)", i, out, seen[i])
						}
						seen[f.Index()] = true
						count++
					}
					if count != k {
						return fmt.Errorf("%d results, want %d", count, k)
					}
					return nil
				})
			})
			if ran.Load() != k {
				t.Errorf("fn ran %d times, want %d", ran.Load(), k)
			}
		})
	}
}

// TestRunSubmitsFromResults: a body that submits 3 new tasks from each of
// its first 1000 results, while the others still run, gets all 4000.
func TestRunSubmitsFromResults(t *testing.T) {
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				return pool.Run(ctx, c, jitter, func(ctx context.Context, ex *pool.Executor[int, int]) error {
					var first []*pool.Future[int]
					for i := range 1000 {
						first = append(first, ex.Submit(i))
					}
					var second []*pool.Future[int]
					want := map[*pool.Future[int]]int{}
					got := 0
					for f, err := range ex.AsCompleted(ctx, first...) {
						if err != nil {
							return err
						}
						out, _ := f.Wait(ctx)
						got++
						for j := range 3 {
							in := 1000 + 3*f.Index() + j
							g := ex.Submit(in)
							second, want[g] = append(second, g), 3*in+1
						}
						if out != 3*f.Index()+1 {
							return fmt.Errorf("task %d: %d", f.Index(), out)
						}
					}
					for f, err := range ex.AsCompleted(ctx, second...) {
						if err != nil {
							return err
						}
						got++
						if out, _ := f.Wait(ctx); out != want[f] {
							return fmt.Errorf("task %d: %d, want %d", f.Index(), out, want[f])
						}
						delete(want, f)
					}
					if got != 4000 || len(want) > 0 {
						return fmt.Errorf("%d results, want 4000", got)
					}
					return nil
				})
			})
		})
	}
}

// TestRunCancel: a ctx that ends on rank 0 while tasks run and the body
// waits ends the call on every rank within a second, rank 0 with ctx's
// error and the others with ErrStopped; the body's futures end too.
func TestRunCancel(t *testing.T) {
	const n = 4
	errs := make([]error, n)
	var took time.Duration
	var bodyErr error
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := mpitest.World(ctx, n, func(ctx context.Context, c *mpi.Comm) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var at time.Time
		slow := func(ctx context.Context, x int) (int, error) {
			select {
			case <-time.After(5 * time.Millisecond):
				return x, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		errs[c.Rank()] = pool.Run(ctx, c, slow, func(ctx context.Context, ex *pool.Executor[int, int]) error {
			var last *pool.Future[int]
			for i := range 10000 {
				last = ex.Submit(i)
			}
			at = time.Now().Add(100 * time.Millisecond)
			time.AfterFunc(100*time.Millisecond, cancel)
			_, bodyErr = last.Wait(context.Background())
			return bodyErr
		})
		if c.Rank() == 0 {
			took = time.Since(at)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range errs {
		switch {
		case r == 0 && !errors.Is(err, context.Canceled):
			t.Errorf("rank 0: %v, want context.Canceled", err)
		case r != 0 && !errors.Is(err, pool.ErrStopped):
			t.Errorf("rank %d: %v, want ErrStopped", r, err)
		}
	}
	if !errors.Is(bodyErr, context.Canceled) {
		t.Errorf("the body's future: %v, want context.Canceled", bodyErr)
	}
	if took > time.Second {
		t.Errorf("rank 0 returned %v after its cancel", took)
	}
}

// TestRunFailures: a task's error ends the call on every rank with the
// same *TaskError, and the futures still pending get it; a body's error
// is rank 0's, and the other ranks stop; bad arguments are errors on every
// rank.
func TestRunFailures(t *testing.T) {
	const n = 3
	t.Run("task", func(t *testing.T) {
		errs := make([]error, n)
		var pendingErr error
		mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
			fn := func(ctx context.Context, x int) (int, error) {
				if x == 57 {
					return 0, errors.New("bad input 57")
				}
				return jitter(ctx, x)
			}
			errs[c.Rank()] = pool.Run(ctx, c, fn, func(ctx context.Context, ex *pool.Executor[int, int]) error {
				var fs []*pool.Future[int]
				for i := range 1000 {
					fs = append(fs, ex.Submit(i))
				}
				// Not body's ctx (canceled with the same cause): only the
				// future's own end answers this Wait.
				wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, pendingErr = fs[999].Wait(wctx)
				return nil
			})
			return nil
		})
		for r, err := range errs {
			var te *pool.TaskError
			if !errors.As(err, &te) || te.Index != 57 || !strings.Contains(err.Error(), "bad input 57") {
				t.Errorf("rank %d: %v, want task 57's TaskError", r, err)
			}
		}
		var te *pool.TaskError
		if !errors.As(pendingErr, &te) || te.Index != 57 {
			t.Errorf("a pending future: %v, want task 57's TaskError", pendingErr)
		}
	})
	t.Run("body", func(t *testing.T) {
		errs := make([]error, n)
		mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
			errs[c.Rank()] = pool.Run(ctx, c, jitter, func(ctx context.Context, ex *pool.Executor[int, int]) error {
				for i := range 100 {
					ex.Submit(i)
				}
				return errors.New("enough")
			})
			return nil
		})
		if err := errs[0]; err == nil || !strings.Contains(err.Error(), "enough") {
			t.Errorf("rank 0: %v, want the body's error", err)
		}
		for r := 1; r < n; r++ {
			if !errors.Is(errs[r], pool.ErrStopped) || !strings.Contains(errs[r].Error(), "enough") {
				t.Errorf("rank %d: %v, want ErrStopped saying why", r, errs[r])
			}
		}
	})
	t.Run("panic", func(t *testing.T) {
		errs := make([]error, n)
		mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
			errs[c.Rank()] = pool.Run(ctx, c, jitter, func(ctx context.Context, ex *pool.Executor[int, int]) error {
				panic("body gave up")
			})
			return nil
		})
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "body gave up") {
				t.Errorf("rank %d: %v, want the body's panic", r, err)
			}
		}
	})
	t.Run("static", func(t *testing.T) {
		errs := make([]error, n)
		mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
			errs[c.Rank()] = pool.Run(ctx, c, jitter, func(ctx context.Context, ex *pool.Executor[int, int]) error { return nil }, pool.Static())
			return nil
		})
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "Static") {
				t.Errorf("rank %d: %v, want an error naming Static", r, err)
			}
		}
	})
}

// TestFutureCancel: a task no rank has yet is withdrawn (its Wait says
// canceled, fn never sees it); one handed out runs to its end.
func TestFutureCancel(t *testing.T) {
	const n = 2
	var ranCanceled atomic.Bool
	release := make(chan struct{})
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		fn := func(ctx context.Context, x int) (int, error) {
			if x == 99 {
				ranCanceled.Store(true)
			}
			if x < 2 {
				<-release // both ranks busy: task 99 stays in rank 0's queue
			}
			return x, nil
		}
		return pool.Run(ctx, c, fn, func(ctx context.Context, ex *pool.Executor[int, int]) error {
			a, b := ex.Submit(0), ex.Submit(1)
			var rest []*pool.Future[int]
			for i := 2; i < 99; i++ {
				rest = append(rest, ex.Submit(i))
			}
			f := ex.Submit(99)
			if !f.Cancel() || !f.Cancel() {
				return errors.New("Cancel of a queued task said no")
			}
			if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
				return fmt.Errorf("a canceled task's Wait: %v", err)
			}
			close(release)
			if _, err := a.Wait(ctx); err != nil {
				return err
			}
			if a.Cancel() {
				return errors.New("Cancel of a finished task said yes")
			}
			if out, err := b.Wait(ctx); err != nil || out != 1 {
				return fmt.Errorf("task 1: %d, %v", out, err)
			}
			for f, err := range ex.AsCompleted(ctx, rest...) {
				if out, _ := f.Wait(ctx); err != nil || out != f.Index() {
					return fmt.Errorf("task %d: %d, %v", f.Index(), out, err)
				}
			}
			return nil
		})
	})
	if ranCanceled.Load() {
		t.Error("fn ran the canceled task")
	}
}
