//go:build linux

package collectives

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/shm"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestConformanceShared runs the suite with the ranks on one shared-memory
// segment, as gorun runs the ranks of one host: every frame between them
// goes through the rings, and SendAll to each rank in turn.
func TestConformanceShared(t *testing.T) {
	conformance(t, mpitest.RunShared)
}

var randomShmCases = flag.Int("random.shmcases", 60, "how many cases TestRandomShared runs")

// TestRandomShared is TestRandomMemory with the ranks on one shared-memory
// segment: random point-to-point programs (small eager limits and budgets
// among them, so that rings fill and sends queue) and random collective
// programs, checked against what was sent.
func TestRandomShared(t *testing.T) {
	base, cases := randomSeeds(t, *randomShmCases, 20)
	for i := range cases {
		seed := base + uint64(i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var err error
			var what fmt.Stringer
			if seed%2 == 0 {
				pc := drawP2P(seed)
				what = pc
				err = mpitest.WorldShared(ctx, pc.n, func(ctx context.Context, c *mpi.Comm) error {
					return pc.run(ctx, c)
				}, pc.opts()...)
			} else {
				rc := drawCase(seed)
				what = rc
				err = mpitest.WorldShared(ctx, rc.n, func(ctx context.Context, c *mpi.Comm) error {
					return runRandom(ctx, c, rc)
				}, mpi.WithMulticast(rc.mc), mpi.WithSingleCopy(rc.sc))
			}
			if err != nil {
				t.Errorf("%v\n  case: %v\n  replay: go test ./collectives -run TestRandomShared -random.seed=%d -random.shmcases=1", err, what, seed)
			}
		})
	}
}

// TestConformanceHosts runs the suite with the ranks on hosts of two
// consecutive ranks each (the last alone when n is odd), each host's on a
// segment of its own: the agreement tree then has a group per host
// (agreeGroups), whose leaders alone talk across hosts, through the server.
func TestConformanceHosts(t *testing.T) {
	conformance(t, func(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := mpitest.WorldHosts(ctx, blockHosts(n, 2), fn, opts...); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBarrierOnFlags: on ranks that share a host's memory, a Barrier waits
// on the communicator's flags and takes no agreement (no message: its
// first phase never runs); a rank that calls another collective at that
// point makes every rank take the agreement, which names the mismatch;
// and a communicator on ranks of several hosts has no flags.
func TestBarrierOnFlags(t *testing.T) {
	const n, rounds = 4, 50
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		sh, agreed, err := countAgreements(ctx, c)
		if err != nil {
			return err
		}
		if sh.flags == nil {
			return errors.New("no flags on one host's ranks")
		}
		for range rounds {
			if err := Barrier(ctx, c); err != nil {
				return err
			}
		}
		if k := agreed.Load(); k != 0 {
			return fmt.Errorf("rank %d: %d of %d barriers ran the agreement", c.Rank(), k, rounds)
		}
		if c.Rank() == 1 {
			_, err = Allgather(ctx, c, []int{1})
		} else {
			err = Barrier(ctx, c)
		}
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "called different collectives") {
			return fmt.Errorf("rank %d: a Barrier beside an Allgather: %v, want ErrMismatch", c.Rank(), err)
		}
		if agreed.Load() != 1 {
			return fmt.Errorf("rank %d: the mismatched call ran the agreement %d times, want once", c.Rank(), agreed.Load())
		}
		// The communicator is still usable, on the flags.
		return Barrier(ctx, c)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := mpitest.WorldHosts(ctx, []int{0, 0, 1, 1}, func(ctx context.Context, c *mpi.Comm) error {
		if err := Barrier(ctx, c); err != nil {
			return err
		}
		if shadowOf(c).flags != nil {
			return errors.New("flags on ranks of two hosts")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAllreduceOnFlags: on ranks that share a host's memory, an Allreduce
// of at most a slot's data is combined from the slots, without the
// agreement, and right, round after round, a small Bcast between two (on
// the flags too) and a slow rank (its Op sleeps) included (that a slot is not
// written again while a rank may read it is TestHostFlagsPostWaits's, in
// mpi); a rank whose Allreduce has another length, or data too large for a
// slot, makes every rank take the agreement, which names the mismatch.
func TestAllreduceOnFlags(t *testing.T) {
	const n, rounds = 4, 30
	elems := shm.SlotData / 8
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		_, agreed, err := countAgreements(ctx, c)
		if err != nil {
			return err
		}
		data := make([]float64, elems)
		for k := range rounds {
			for i := range data {
				data[i] = float64(c.Rank()*1000 + k + i)
			}
			op := Op[float64](Sum[float64])
			if c.Rank() == 2 && k%3 == 0 {
				op = func(acc, in []float64) { time.Sleep(20 * time.Millisecond); Sum(acc, in) }
			}
			got, err := Allreduce(ctx, c, data, op)
			if err != nil {
				return err
			}
			for i, v := range got {
				if want := float64(1000*n*(n-1)/2 + n*(k+i)); v != want {
					return fmt.Errorf("rank %d round %d: [%d] = %v, want %v", c.Rank(), k, i, v, want)
				}
			}
			if _, err := Bcast(ctx, c, 3, []byte{byte(k)}); err != nil {
				return err
			}
		}
		if a := agreed.Load(); a != 0 {
			return fmt.Errorf("rank %d: %d agreements in %d rounds of an Allreduce and a Bcast, want none", c.Rank(), a, rounds)
		}
		for _, other := range []int{elems - 1, elems + 1} {
			mine := elems
			if c.Rank() == 1 {
				mine = other
			}
			_, err := Allreduce(ctx, c, make([]float64, mine), Sum)
			if !errors.Is(err, ErrMismatch) {
				return fmt.Errorf("rank %d: Allreduce of %d elements beside one of %d: %v, want ErrMismatch", c.Rank(), mine, other, err)
			}
		}
		got, err := Allreduce(ctx, c, []int32{int32(c.Rank())}, Sum) // still usable
		if err != nil || got[0] != n*(n-1)/2 {
			return fmt.Errorf("rank %d: after the mismatches: %v, %v", c.Rank(), got, err)
		}
		return nil
	})
}

// TestBcastAllgatherOnFlags: on ranks that share a host's memory, a Bcast
// or an Allgather whose data fits a slot runs on the flags, without the
// agreement, and right, numbers and gob-encoded values alike; data that
// does not fit (on one rank only, or on all) is lent, and right too (see
// TestBcastLent, TestGatherLent); different roots make every rank fail
// with ErrMismatch.
func TestBcastAllgatherOnFlags(t *testing.T) {
	const n = 3
	small, large := shm.SlotData/8, shm.SlotData/8+1 // float64s
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		_, agreed, err := countAgreements(ctx, c)
		if err != nil {
			return err
		}
		check := func(what string, wantAgreed int32, err error, ok bool) error {
			a := agreed.Swap(0)
			switch {
			case err != nil:
				return fmt.Errorf("rank %d: %s: %w", c.Rank(), what, err)
			case !ok:
				return fmt.Errorf("rank %d: %s: wrong result", c.Rank(), what)
			case a != wantAgreed:
				return fmt.Errorf("rank %d: %s: %d agreements, want %d", c.Rank(), what, a, wantAgreed)
			}
			return nil
		}
		for _, size := range []int{0, small, large} {
			for root := range n {
				data := make([]float64, size)
				if c.Rank() == root {
					for i := range data {
						data[i] = float64(root*100 + i)
					}
				}
				got, err := Bcast(ctx, c, root, data)
				ok := len(got) == size
				for i := range got {
					ok = ok && got[i] == float64(root*100+i)
				}
				if err := check(fmt.Sprintf("Bcast of %d from %d", size, root), 0, err, ok); err != nil {
					return err
				}
			}
			// One rank's data too large: the others' fit, and all take the
			// agreement.
			mine := make([]float64, size)
			if c.Rank() == 1 && size == small {
				mine = make([]float64, large) // lent
			}
			for i := range mine {
				mine[i] = float64(c.Rank())
			}
			got, err := Allgather(ctx, c, mine)
			ok, at := true, 0
			for r := range n {
				k := size
				if r == 1 && size == small {
					k = large
				}
				for range k {
					ok = ok && at < len(got) && got[at] == float64(r)
					at++
				}
			}
			if err := check(fmt.Sprintf("Allgather of %d", size), 0, err, ok && at == len(got)); err != nil {
				return err
			}
		}
		names, err := Allgather(ctx, c, []string{fmt.Sprint("rank", c.Rank())})
		if err := check("Allgather of strings", 0, err, fmt.Sprint(names) == "[rank0 rank1 rank2]"); err != nil {
			return err
		}
		if _, err := Bcast(ctx, c, c.Rank()%2, []int{1}); !errors.Is(err, ErrMismatch) {
			return fmt.Errorf("rank %d: Bcast with different roots: %v, want ErrMismatch", c.Rank(), err)
		}
		return nil
	})
}

// BenchmarkShared: collectives on goroutine ranks that share a segment,
// as one host's ranks do under gorun: the per-call cost of the calls on
// the flags (bench/collectives measures real processes).
func BenchmarkShared(b *testing.B) {
	for _, n := range []int{2, 4} {
		for _, op := range []string{"barrier", "allreduce8"} {
			b.Run(fmt.Sprintf("%s/n=%d", op, n), func(b *testing.B) {
				mpitest.RunShared(b, n, func(ctx context.Context, c *mpi.Comm) error {
					x := []float64{1}
					if err := Barrier(ctx, c); err != nil {
						return err
					}
					if c.Rank() == 0 {
						b.ResetTimer()
					}
					for range b.N {
						var err error
						if op == "barrier" {
							err = Barrier(ctx, c)
						} else {
							_, err = Allreduce(ctx, c, x, Sum)
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
	}
}

// TestFlagsPeerGone: a rank that leaves (closes its world) while the others
// wait for it on the flags makes their calls fail with mpi.ErrPeerLost
// naming it, as a message it never sends would: a Barrier and a small
// Allreduce, which no message of the gone rank could end (fails, hanging
// until the test's deadline, without the flags' look at the ranks). Rank 2
// leaves once the others have passed the first Barrier (a rank still in it
// when the other's failure poisons the communicator fails too), and ranks
// 0 and 1 keep their worlds open until both have failed: one that closed
// its own first would be the gone rank the other names.
func TestFlagsPeerGone(t *testing.T) {
	for _, op := range []string{"barrier", "allreduce"} {
		t.Run(op, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var passed, failed sync.WaitGroup
			passed.Add(2)
			failed.Add(2)
			err := mpitest.WorldShared(ctx, 3, func(ctx context.Context, c *mpi.Comm) error {
				err := Barrier(ctx, c)
				if c.Rank() == 2 {
					passed.Wait()
					return err // rank 2 leaves: its world closes
				}
				passed.Done()
				if err != nil {
					failed.Done()
					return err
				}
				if op == "barrier" {
					err = Barrier(ctx, c)
				} else {
					_, err = Allreduce(ctx, c, []float64{1}, Sum)
				}
				failed.Done()
				failed.Wait()
				var re *mpi.RankError
				if !errors.Is(err, mpi.ErrPeerLost) || !errors.As(err, &re) || re.Rank != 2 {
					return fmt.Errorf("rank %d: %s without rank 2: %v, want mpi.ErrPeerLost naming rank 2", c.Rank(), op, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReduceScanGatherOnFlags: on ranks that share a host's memory, a
// small Reduce, Scan, Exscan and Gather run on the flags, without the
// agreement, with the right results on the ranks that get one and nil on
// the others; different roots still give ErrMismatch.
func TestReduceScanGatherOnFlags(t *testing.T) {
	const n = 3
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		_, agreed, err := countAgreements(ctx, c)
		if err != nil {
			return err
		}
		me := c.Rank()
		mine := []int{me + 1, 10 * (me + 1)}
		prefix := func(upto int) []int { // ranks 0..upto-1
			if upto == 0 {
				return nil
			}
			s := (upto * (upto + 1)) / 2
			return []int{s, 10 * s}
		}
		for root := range n {
			got, err := Reduce(ctx, c, root, mine, Sum)
			want := prefix(n)
			if me != root {
				want = nil
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("rank %d: Reduce to %d: %v, %v, want %v", me, root, got, err, want)
			}
			gathered, err := Gather(ctx, c, root, []string{fmt.Sprint("r", me)})
			wantG := "[]"
			if me == root {
				wantG = "[r0 r1 r2]"
			}
			if err != nil || fmt.Sprint(gathered) != wantG {
				return fmt.Errorf("rank %d: Gather to %d: %v, %v, want %s", me, root, gathered, err, wantG)
			}
		}
		got, err := Scan(ctx, c, mine, Sum)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(prefix(me+1)) {
			return fmt.Errorf("rank %d: Scan: %v, %v, want %v", me, got, err, prefix(me+1))
		}
		got, err = Exscan(ctx, c, mine, Sum)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(prefix(me)) {
			return fmt.Errorf("rank %d: Exscan: %v, %v, want %v", me, got, err, prefix(me))
		}
		if a := agreed.Load(); a != 0 {
			return fmt.Errorf("rank %d: %d agreements, want none", me, a)
		}
		if _, err := Reduce(ctx, c, me%2, mine, Sum); !errors.Is(err, ErrMismatch) {
			return fmt.Errorf("rank %d: Reduce with different roots: %v, want ErrMismatch", me, err)
		}
		if _, err := Gather(ctx, c, me%2, mine); !errors.Is(err, ErrMismatch) {
			return fmt.Errorf("rank %d: Gather with different roots: %v, want ErrMismatch", me, err)
		}
		return nil
	})
}

// TestPostedOpPanic: in an Allreduce on the flags an Op that panics on
// rank 0 panics there once the call is over, with its own value; the other
// ranks, which combine the data themselves, return the right result; and
// the communicator stays usable.
func TestPostedOpPanic(t *testing.T) {
	const n = 3
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		op := func(acc, in []float64) {
			if c.Rank() == 0 {
				panic("boom on rank 0")
			}
			Sum(acc, in)
		}
		var got []float64
		var err error
		v := func() (v any) {
			defer func() { v = recover() }()
			got, err = Allreduce(ctx, c, []float64{float64(c.Rank())}, op)
			return nil
		}()
		switch {
		case c.Rank() == 0 && v != "boom on rank 0":
			return fmt.Errorf("rank 0: recovered %v, want its Op's panic", v)
		case c.Rank() != 0 && (v != nil || err != nil || len(got) != 1 || got[0] != 3):
			return fmt.Errorf("rank %d: %v, %v, panic %v; want [3]", c.Rank(), got, err, v)
		}
		return Barrier(ctx, c)
	})
}

// maxBarrierAllocs is the most allocations a Barrier on the flags may
// make on each rank: the call, its context's cancellation (two) and its
// quiet context for the hang report (one). The status is the call's own,
// and the quiet context one allocation, not two.
const maxBarrierAllocs = 4

// TestBarrierOnFlagsAllocs: a Barrier on the flags allocates at most
// maxBarrierAllocs times a rank (every allocation is paid at every call of
// a program that synchronizes often). Counted over both goroutine ranks of
// one process and many calls, so that a stray allocation elsewhere does
// not count.
func TestBarrierOnFlagsAllocs(t *testing.T) {
	const calls = 2000
	var before, after runtime.MemStats
	mpitest.RunShared(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		for range 10 { // the shadow, the flags, the first calls' pages
			if err := Barrier(ctx, c); err != nil {
				return err
			}
		}
		// Rank 1 may be one call ahead of rank 0's reads, no more: a
		// call's allocations, against thousands counted.
		if c.Rank() == 0 {
			runtime.ReadMemStats(&before)
		}
		for range calls {
			if err := Barrier(ctx, c); err != nil {
				return err
			}
		}
		if c.Rank() == 0 {
			runtime.ReadMemStats(&after)
		}
		return nil
	})
	per := float64(after.Mallocs-before.Mallocs) / calls / 2
	t.Logf("%.2f allocations a Barrier a rank", per)
	if per > maxBarrierAllocs+0.5 { // the race detector's own, a few in a hundred calls
		t.Errorf("a Barrier on the flags made %.2f allocations a rank, want at most %d", per, maxBarrierAllocs)
	}
}
