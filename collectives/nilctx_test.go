package collectives

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
	"weak"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// noCtx is a nil context.Context, in a variable so that nothing flags the
// literal nil.
var noCtx context.Context

// TestNilContext: every collective given a nil ctx returns an error
// wrapping mpi.ErrNilContext on every rank, as the first call on a
// communicator (which makes its shadow) and as a later one, and the next
// Barrier and Allreduce on that communicator work. (A nil ctx used to
// panic with the shadow's lock held, and every later call blocked.)
func TestNilContext(t *testing.T) {
	calls := []struct {
		name string
		call func(c *mpi.Comm) error
	}{
		{"Barrier", func(c *mpi.Comm) error { return Barrier(noCtx, c) }},
		{"Bcast", func(c *mpi.Comm) error { _, err := Bcast(noCtx, c, 0, []int{1}); return err }},
		{"Scatter", func(c *mpi.Comm) error { _, err := Scatter(noCtx, c, 0, []int{1, 2, 3}); return err }},
		{"Scatterv", func(c *mpi.Comm) error { _, err := Scatterv(noCtx, c, 0, []int{1, 2, 3}, []int{1, 1, 1}); return err }},
		{"Gather", func(c *mpi.Comm) error { _, err := Gather(noCtx, c, 0, []int{1}); return err }},
		{"Allgather", func(c *mpi.Comm) error { _, err := Allgather(noCtx, c, []int{1}); return err }},
		{"Reduce", func(c *mpi.Comm) error { _, err := Reduce(noCtx, c, 0, []int{1}, Sum); return err }},
		{"Allreduce", func(c *mpi.Comm) error { _, err := Allreduce(noCtx, c, []int{1}, Sum); return err }},
		{"Alltoall", func(c *mpi.Comm) error { _, err := Alltoall(noCtx, c, []int{1, 2, 3}); return err }},
		{"Scan", func(c *mpi.Comm) error { _, err := Scan(noCtx, c, []int{1}, Sum); return err }},
		{"Exscan", func(c *mpi.Comm) error { _, err := Exscan(noCtx, c, []int{1}, Sum); return err }},
		{"BcastValue", func(c *mpi.Comm) error { _, err := BcastValue(noCtx, c, 0, 1); return err }},
		{"ReduceValue", func(c *mpi.Comm) error { _, err := ReduceValue(noCtx, c, 0, 1, Sum); return err }},
		{"AllreduceValue", func(c *mpi.Comm) error { _, err := AllreduceValue(noCtx, c, 1, Sum); return err }},
		{"GatherValues", func(c *mpi.Comm) error { _, err := GatherValues(noCtx, c, 0, 1); return err }},
		{"AllgatherValues", func(c *mpi.Comm) error { _, err := AllgatherValues(noCtx, c, 1); return err }},
		{"ScatterValues", func(c *mpi.Comm) error { _, err := ScatterValues(noCtx, c, 0, []int{1, 2, 3}); return err }},
	}
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		for _, tc := range calls {
			for _, first := range []bool{true, false} {
				d, err := c.Dup(ctx)
				if err != nil {
					return err
				}
				if !first {
					if err := Barrier(ctx, d); err != nil {
						return err
					}
				}
				if err := tc.call(d); !errors.Is(err, mpi.ErrNilContext) {
					return fmt.Errorf("%s with a nil ctx (first call: %v): %v, want an error wrapping mpi.ErrNilContext", tc.name, first, err)
				}
				if err := Barrier(ctx, d); err != nil {
					return fmt.Errorf("Barrier after %s with a nil ctx: %v", tc.name, err)
				}
				got, err := Allreduce(ctx, d, []int{c.Rank()}, Sum)
				if err != nil || !slices.Equal(got, []int{3}) {
					return fmt.Errorf("Allreduce after %s with a nil ctx: %v, %v", tc.name, got, err)
				}
			}
		}
		return nil
	})
}

// TestOpPanic: a reduction's Op that panics on some ranks panics again
// there, with its own value, once the call is over; no rank waits for
// them, no rank returns a result the Op's panic spoiled (every other rank
// gets ErrOpPanicked, or the right result where the panic could not touch
// it), and the communicator stays usable: the next Barrier and Allreduce
// work. Small data (combined along the call's check) and large data (the
// data phase's failure marker), on 3 ranks (a ring) and 4 (halving); and
// on ranks that share a host's memory (the slots, and a lent Allreduce's
// status), on Linux.
func TestOpPanic(t *testing.T) {
	type kase struct {
		name  string
		k     kind
		elems int
		bad   func(rank int) bool // where the Op panics, when it runs there
	}
	const large = reduceInline/8 + 1000
	var cases []kase
	for _, k := range []kind{kAllreduce, kReduce, kScan} {
		cases = append(cases,
			kase{"small/rank0", k, 4, func(r int) bool { return r == 0 }},
			kase{"large/rank1", k, large, func(r int) bool { return r == 1 }},
			kase{"large/every", k, large, func(int) bool { return true }},
		)
	}
	runs := map[string]func(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option){"bus": mpitest.Run}
	if runtime.GOOS == "linux" {
		runs["shared"] = mpitest.RunShared
	}
	for where, run := range runs {
		for _, n := range []int{3, 4} {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s/%s/%s/n=%d", where, tc.k, tc.name, n), func(t *testing.T) {
					run(t, n, func(ctx context.Context, c *mpi.Comm) error {
						data := make([]float64, tc.elems)
						for i := range data {
							data[i] = float64(c.Rank() + i)
						}
						op := func(acc, in []float64) {
							if tc.bad(c.Rank()) {
								panic(fmt.Sprintf("boom on rank %d", c.Rank()))
							}
							Sum(acc, in)
						}
						var got []float64
						var err error
						recovered := func() (v any) {
							defer func() { v = recover() }()
							switch tc.k {
							case kAllreduce:
								got, err = Allreduce(ctx, c, data, op)
							case kReduce:
								got, err = Reduce(ctx, c, 0, data, op)
							case kScan:
								got, err = Scan(ctx, c, data, op)
							}
							return nil
						}()
						want := fmt.Sprintf("boom on rank %d", c.Rank())
						// Every rank's result depends on the panicking ranks'
						// in a small call on the bus (combined along the
						// check; on the slots each rank combines its own)
						// and in a large Allreduce; the root's in Reduce.
						mustFail := tc.elems < large && where == "bus" || tc.elems >= large && (tc.k == kAllreduce || tc.k == kReduce && c.Rank() == 0)
						switch {
						case recovered == nil && mustFail && !errors.Is(err, ErrOpPanicked):
							return fmt.Errorf("got %d elements and %v; want an error wrapping ErrOpPanicked", len(got), err)
						case recovered != nil && recovered != want:
							return fmt.Errorf("panicked with %v, want %q", recovered, want)
						case recovered == nil && err == nil && got != nil:
							// The right result, then: the sum over the ranks
							// that count.
							top := c.Size() - 1
							if tc.k == kScan {
								top = c.Rank()
							}
							for i, v := range got {
								w := 0.0
								for r := 0; r <= top; r++ {
									w += float64(r + i)
								}
								if v != w {
									return fmt.Errorf("element %d is %v, want %v: a result the panic spoiled", i, v, w)
								}
							}
						case recovered == nil && err != nil && !errors.Is(err, ErrOpPanicked):
							return fmt.Errorf("got %v, want an error wrapping ErrOpPanicked", err)
						case recovered == nil && err == nil && (tc.k != kReduce || c.Rank() == 0):
							return errors.New("no result and no error")
						}
						if err := Barrier(ctx, c); err != nil {
							return fmt.Errorf("Barrier after the panic: %v", err)
						}
						sum, err := Allreduce(ctx, c, []int{1}, Sum)
						if err != nil || sum[0] != c.Size() {
							return fmt.Errorf("Allreduce after the panic: %v, %v", sum, err)
						}
						return nil
					})
				})
			}
		}
	}
}

// TestShadowUnlockedOnPanic: a panic while a call holds its shadow's lock
// (here the shadow's Dup given a nil ctx, called past begin's check)
// releases the lock: the next collective on the communicator runs, where
// it used to block forever, deaf to its ctx.
func TestShadowUnlockedOnPanic(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		v, _ := shadows.LoadOrStore(weak.Make(c), &shadow{key: weak.Make(c)})
		func() {
			defer func() { recover() }()
			v.(*shadow).enter(noCtx, c, kBarrier, noElem, 0, false)
		}()
		done := make(chan error, 1)
		go func() { done <- Barrier(ctx, c) }()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			return errors.New("the Barrier after a panic in the shadow's lock is blocked")
		}
	})
}
