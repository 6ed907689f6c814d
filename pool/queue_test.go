package pool_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
	"github.com/gorun-hpc/gorun/pool"
)

// queueItem names its producer and its place in that producer's sequence.
func queueItem(producer, seq int) int64 { return int64(producer)<<32 | int64(seq) }

// checkDrained checks what the consumers got (one slice per consumer
// goroutine, in the order each got them): every item of every producer
// exactly once, and each producer's items in the order it put them.
func checkDrained(got [][]int64, producers, perProducer int) error {
	seen := make(map[int64]int)
	for ci, items := range got {
		last := map[int64]int64{}
		for _, it := range items {
			seen[it]++
			p, s := it>>32, it&(1<<32-1)
			if prev, ok := last[p]; ok && s <= prev {
				return fmt.Errorf("consumer %d got producer %d's item %d after its item %d: not FIFO", ci, p, s, prev)
			}
			last[p] = s
		}
	}
	for p := range producers {
		for s := range perProducer {
			if n := seen[queueItem(p, s)]; n != 1 {
				return fmt.Errorf("producer %d's item %d got %d times, want once", p, s, n)
			}
		}
	}
	if len(seen) != producers*perProducer {
		return fmt.Errorf("%d distinct items got, want %d", len(seen), producers*perProducer)
	}
	return nil
}

// TestQueueProducersConsumers: every rank of 5 puts from two goroutines and
// gets from two more, 300 items per producer, unbounded and bounded, owned
// by rank 0 and by the last rank: nothing is lost, nothing duplicated, each
// producer's items come out in order, and Get ends with ErrQueueClosed on
// every rank once every rank has closed.
func TestQueueProducersConsumers(t *testing.T) {
	const n, perRank, perProducer = 5, 2, 300
	for _, tc := range []struct {
		name string
		opts []pool.QueueOption
	}{
		{"unbounded/owner=0", nil},
		{"maxsize=3/owner=4", []pool.QueueOption{pool.MaxSize(3), pool.Owner(4)}},
		{"maxsize=1/owner=2", []pool.QueueOption{pool.MaxSize(1), pool.Owner(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				q, err := pool.NewQueue[int64](ctx, c, tc.opts...)
				if err != nil {
					return err
				}
				var wg sync.WaitGroup
				errs := make(chan error, 2*perRank)
				for g := range perRank {
					p := c.Rank()*perRank + g
					wg.Go(func() {
						for s := range perProducer {
							if err := q.Put(ctx, queueItem(p, s)); err != nil {
								errs <- fmt.Errorf("producer %d, item %d: %w", p, s, err)
								return
							}
						}
					})
				}
				got := make([][]int64, perRank)
				var cwg sync.WaitGroup
				for g := range perRank {
					cwg.Go(func() {
						for {
							v, err := q.Get(ctx)
							if err == pool.ErrQueueClosed {
								return
							}
							if err != nil {
								errs <- err
								return
							}
							got[g] = append(got[g], v)
						}
					})
				}
				wg.Wait()
				if err := q.Close(); err != nil {
					return err
				}
				cwg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					return err
				}
				// Every consumer's sequence, at rank 0.
				all, err := collectives.Gather(ctx, c, 0, got)
				if err != nil || c.Rank() != 0 {
					return err
				}
				return checkDrained(all, n*perRank, perProducer)
			})
		})
	}
}

// TestQueueBounded: with MaxSize(2) and no one getting, the third Put
// blocks (until its ctx ends, and then its item is not in the queue); once
// an item is got, it goes in.
func TestQueueBounded(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		q, err := pool.NewQueue[string](ctx, c, pool.MaxSize(2))
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			for _, s := range []string{"a", "b"} {
				if err := q.Put(ctx, s); err != nil {
					return err
				}
			}
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			if err := q.Put(short, "c"); !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("Put on a full queue: %v, want DeadlineExceeded", err)
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 0 {
			if v, err := q.Get(ctx); err != nil || v != "a" {
				return fmt.Errorf("Get: %q, %v; want a", v, err)
			}
		}
		if err := collectives.Barrier(ctx, c); err != nil {
			return err
		}
		if c.Rank() == 1 {
			if err := q.Put(ctx, "d"); err != nil {
				return err
			}
		}
		q.Close()
		if c.Rank() == 0 {
			for _, want := range []string{"b", "d"} {
				if v, err := q.Get(ctx); err != nil || v != want {
					return fmt.Errorf("Get: %q, %v; want %s (the withdrawn c never went in)", v, err, want)
				}
			}
			if _, err := q.Get(ctx); err != pool.ErrQueueClosed {
				return fmt.Errorf("Get at the end: %v, want ErrQueueClosed", err)
			}
		}
		return nil
	})
}

// TestQueueGetWithdrawn: Gets whose ctx ends while they wait, racing with
// Puts, take nothing or exactly one item: the items that consumers with
// ever shorter deadlines got, and those left after, are every item once.
func TestQueueGetWithdrawn(t *testing.T) {
	const n, items = 4, 400
	mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
		q, err := pool.NewQueue[int64](ctx, c, pool.Owner(1))
		if err != nil {
			return err
		}
		var got []int64
		if c.Rank() == 0 {
			for s := range items {
				if err := q.Put(ctx, queueItem(0, s)); err != nil {
					return err
				}
			}
		} else {
			rng := rand.New(rand.NewPCG(uint64(c.Rank()), 1))
			timeouts := 0
			for timeouts < 200 {
				short, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(300))*time.Microsecond)
				v, err := q.Get(short)
				cancel()
				switch {
				case err == nil:
					got = append(got, v)
				case errors.Is(err, context.DeadlineExceeded):
					timeouts++
				default:
					return err
				}
			}
		}
		q.Close()
		for {
			v, err := q.Get(ctx)
			if err == pool.ErrQueueClosed {
				break
			}
			if err != nil {
				return err
			}
			got = append(got, v)
		}
		all, err := collectives.Gather(ctx, c, 0, [][]int64{got})
		if err != nil || c.Rank() != 0 {
			return err
		}
		return checkDrained(all, 1, items)
	})
}

// TestQueueClosed: Put after this rank's Close is ErrQueueClosed; Get
// returns ErrQueueClosed again and again once the queue ended; a Get of
// another type's item is an error.
func TestQueueClosed(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		q, err := pool.NewQueue[float64](ctx, c, pool.Owner(2))
		if err != nil {
			return err
		}
		if err := q.Close(); err != nil {
			return err
		}
		if err := q.Close(); err != nil {
			return fmt.Errorf("second Close: %w", err)
		}
		if err := q.Put(ctx, 1); !errors.Is(err, pool.ErrQueueClosed) {
			return fmt.Errorf("Put after Close: %v, want ErrQueueClosed", err)
		}
		for range 3 {
			if _, err := q.Get(ctx); err != pool.ErrQueueClosed {
				return fmt.Errorf("Get on an ended queue: %v, want ErrQueueClosed", err)
			}
		}
		return nil
	})
}

// TestQueueOptions: options that differ between ranks, an owner out of
// range and a negative MaxSize are errors on every rank, not a hang.
func TestQueueOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(rank int) []pool.QueueOption
		want string
	}{
		{"owners differ", func(r int) []pool.QueueOption { return []pool.QueueOption{pool.Owner(r % 2)} }, "different owners (0 and 1)"},
		{"maxsize differs", func(r int) []pool.QueueOption { return []pool.QueueOption{pool.MaxSize(r)} }, "different MaxSize (0 and 2)"},
		{"owner out of range", func(r int) []pool.QueueOption { return []pool.QueueOption{pool.Owner(3)} }, "Owner(3) not in [0, 3)"},
		{"negative maxsize", func(r int) []pool.QueueOption {
			if r == 1 {
				return []pool.QueueOption{pool.MaxSize(-1)}
			}
			return nil
		}, "bad option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
				_, err := pool.NewQueue[int](ctx, c, tc.opts(c.Rank())...)
				if err == nil {
					return errors.New("no error")
				}
				if c.Rank() != 1 && !errorsContain(err, tc.want) {
					return fmt.Errorf("error %q does not say %q", err, tc.want)
				}
				return nil
			})
		})
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && len(s) > 0 && strings.Contains(err.Error(), s)
}

// TestQueueJoin: on a Joinable queue, Join waits until every item put has
// been marked done (with one item not done it is still waiting when its
// ctx ends); a TaskDone too many is an error; the queue ends only once the
// last item is done; a queue made without Joinable refuses both calls.
func TestQueueJoin(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		plain, err := pool.NewQueue[int](ctx, c)
		if err != nil {
			return err
		}
		if plain.TaskDone(ctx) == nil || plain.Join(ctx) == nil {
			return errors.New("TaskDone or Join on a queue made without Joinable: no error")
		}
		q, err := pool.NewQueue[int](ctx, c, pool.Joinable(), pool.Owner(2))
		if err != nil {
			return err
		}
		barrier := func() error { return collectives.Barrier(ctx, c) }
		short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 50*time.Millisecond) }
		if c.Rank() == 0 {
			for i := range 100 {
				if err := q.Put(ctx, i); err != nil {
					return err
				}
			}
		}
		if err := barrier(); err != nil {
			return err
		}
		if c.Rank() == 1 { // gets all 100, marks 99 done
			for i := range 100 {
				if v, err := q.Get(ctx); err != nil || v != i {
					return fmt.Errorf("Get: %v, %v; want %d", v, err, i)
				}
				if i < 99 {
					if err := q.TaskDone(ctx); err != nil {
						return err
					}
				}
			}
		}
		q.Close()
		if err := barrier(); err != nil {
			return err
		}
		if c.Rank() == 0 {
			sctx, cancel := short()
			err := q.Join(sctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("Join with an item not done: %v, want DeadlineExceeded", err)
			}
		}
		if c.Rank() == 2 { // every rank closed, the queue is empty, one item is not done: not the end yet
			sctx, cancel := short()
			_, err := q.Get(sctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("Get with an item not done: %v, want DeadlineExceeded", err)
			}
		}
		if err := barrier(); err != nil {
			return err
		}
		if c.Rank() == 1 {
			if err := q.TaskDone(ctx); err != nil {
				return fmt.Errorf("the 100th TaskDone: %w", err)
			}
		}
		if err := q.Join(ctx); err != nil {
			return fmt.Errorf("Join once all is done: %w", err)
		}
		if _, err := q.Get(ctx); err != pool.ErrQueueClosed {
			return fmt.Errorf("Get at the end: %v, want ErrQueueClosed", err)
		}
		if err := q.TaskDone(ctx); err == nil {
			return errors.New("a TaskDone too many: no error")
		}
		return nil
	})
}

// TestQueueOwnerLeavesAtEnd: once the queue ends, the owner may leave the
// job at once; a Get that another rank sends just then (the owner's news
// that the queue ended is on its way) still returns ErrQueueClosed, not the
// owner's departure.
func TestQueueOwnerLeavesAtEnd(t *testing.T) {
	for round := range 20 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
				q, err := pool.NewQueue[int](ctx, c, pool.Owner(3))
				if err != nil {
					return err
				}
				if c.Rank() == 0 {
					if err := q.Put(ctx, 1); err != nil {
						return err
					}
				}
				q.Close()
				errs := make(chan error, 4)
				for range 4 {
					go func() {
						for {
							_, err := q.Get(ctx)
							if err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				for range 4 {
					if err := <-errs; err != pool.ErrQueueClosed {
						return fmt.Errorf("Get: %v, want ErrQueueClosed", err)
					}
				}
				return nil // the owner leaves as soon as its Gets end
			})
		})
	}
}
