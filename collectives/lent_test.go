//go:build linux

package collectives

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/hostsync"
	"github.com/gorun-hpc/gorun/internal/shm"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestBcastLent: on ranks that share a host's memory, a Bcast or a
// BcastInto whose data does not fit a slot moves with no message (root
// lends it, the others copy it out of root's memory), numbers and
// gob-encoded values alike, from every root, at the slot's edge (data one
// byte short of a slot goes in it, a slot's worth is lent) and far above;
// with single copies off it takes the agreement, and is right too; and
// BcastInto with different lengths fails with ErrMismatch on every rank.
func TestBcastLent(t *testing.T) {
	const n = 3
	sizes := []int{shm.SlotData - 1, shm.SlotData, 1 << 20} // bytes
	for _, single := range []bool{true, false} {
		t.Run(fmt.Sprint("single-copy=", single), func(t *testing.T) {
			mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
				_, agreed, err := countAgreements(ctx, c)
				if err != nil {
					return err
				}
				check := func(what string, size int, err error, ok bool) error {
					want := int32(0)
					if !single && size >= shm.SlotData {
						want = 1
					}
					a := agreed.Swap(0)
					switch {
					case err != nil:
						return fmt.Errorf("rank %d: %s of %d bytes: %w", c.Rank(), what, size, err)
					case !ok:
						return fmt.Errorf("rank %d: %s of %d bytes: wrong result", c.Rank(), what, size)
					case a != want:
						return fmt.Errorf("rank %d: %s of %d bytes: %d agreements, want %d", c.Rank(), what, size, a, want)
					}
					return nil
				}
				for _, size := range sizes {
					for root := range n {
						data := make([]byte, size)
						if c.Rank() == root {
							for i := range data {
								data[i] = byte(root*7 + i)
							}
						}
						want := make([]byte, size)
						for i := range want {
							want[i] = byte(root*7 + i)
						}
						got, err := Bcast(ctx, c, root, data)
						if err := check(fmt.Sprint("Bcast from ", root), size, err, slices.Equal(got, want)); err != nil {
							return err
						}
						buf := slices.Clone(data)
						err = BcastInto(ctx, c, root, buf)
						if err := check(fmt.Sprint("BcastInto from ", root), size, err, slices.Equal(buf, want)); err != nil {
							return err
						}
					}
				}
				// gob: a string a slot long encodes longer.
				var s []string
				if c.Rank() == 1 {
					s = []string{strings.Repeat("x", shm.SlotData), "y"}
				}
				got, err := Bcast(ctx, c, 1, s)
				ok := len(got) == 2 && len(got[0]) == shm.SlotData && got[1] == "y"
				if err := check("Bcast of strings", shm.SlotData, err, ok); err != nil {
					return err
				}
				agreed.Store(0)
				buf := make([]float64, shm.SlotData/8+c.Rank()) // different lengths
				if err := BcastInto(ctx, c, 0, buf); !errors.Is(err, ErrMismatch) {
					return fmt.Errorf("rank %d: BcastInto with different lengths: %v, want ErrMismatch", c.Rank(), err)
				}
				return Barrier(ctx, c) // still usable
			}, mpi.WithSingleCopy(single))
		})
	}
}

// copyFails is a rank's flags whose copies fail, as where the kernel does
// not let a rank read another's memory.
type copyFails struct {
	hostsync.Flags
	tried atomic.Int32
}

func (f *copyFails) Copy(seq uint32, rank int, addr uint64, dst []byte) error {
	f.tried.Add(1)
	return errors.New("not permitted")
}

// TestBcastLentCopyFails: a rank that cannot copy root's lent data says so
// at the release, and root sends it the data in a message; every rank has
// it right, and the communicator goes on on the flags.
func TestBcastLentCopyFails(t *testing.T) {
	const n, size = 3, 3 * shm.SlotData
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		sh, err := madeShadow(ctx, c)
		if err != nil {
			return err
		}
		var fails *copyFails
		if c.Rank() == 2 {
			fails = &copyFails{Flags: sh.flags}
			sh.flags = fails
		}
		for round := range 3 {
			buf := make([]int32, size/4)
			if c.Rank() == 0 {
				for i := range buf {
					buf[i] = int32(round*size + i)
				}
			}
			if err := BcastInto(ctx, c, 0, buf); err != nil {
				return fmt.Errorf("rank %d: %w", c.Rank(), err)
			}
			for i, v := range buf {
				if v != int32(round*size+i) {
					return fmt.Errorf("rank %d, round %d: element %d is %d", c.Rank(), round, i, v)
				}
			}
		}
		if fails != nil && fails.tried.Load() != 3 {
			return fmt.Errorf("rank 2 tried %d copies, want 3 (the data came another way)", fails.tried.Load())
		}
		return Barrier(ctx, c)
	})
}

// TestBcastLentWithdrawn: a root whose call ends (its ctx) before every
// rank has copied its data withdraws the loan: a rank that comes later
// fails, never returning what root's memory holds by then, and the
// communicator stays usable.
func TestBcastLentWithdrawn(t *testing.T) {
	const n, size = 3, 2 * shm.SlotData
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		if err := Barrier(ctx, c); err != nil { // makes the shadow
			return err
		}
		buf := make([]byte, size)
		switch c.Rank() {
		case 0:
			for i := range buf {
				buf[i] = 1
			}
			cctx, cancel := context.WithCancel(ctx)
			shadowOf(c).lentHook = cancel // once root has lent its data
			err := BcastInto(cctx, c, 0, buf)
			cancel()
			if !errors.Is(err, context.Canceled) {
				return fmt.Errorf("root: %v, want Canceled", err)
			}
			for i := range buf {
				buf[i] = 0xee // what a late copy would find
			}
			if err := c.Send(ctx, 2, 7, nil); err != nil {
				return err
			}
		case 2:
			if _, _, err := c.Recv(ctx, 0, 7); err != nil { // root gave up
				return err
			}
			fallthrough
		default:
			err := BcastInto(ctx, c, 0, buf)
			if !errors.Is(err, hostsync.ErrWithdrawn) {
				return fmt.Errorf("rank %d: %v (first byte %#x), want the withdrawal", c.Rank(), err, buf[0])
			}
		}
		return Barrier(ctx, c)
	})
}

// TestFlagsCountRunsAhead: a rank that gives a call on the flags up and
// goes on to the next arrives twice before a slow rank arrives once; a
// rank waiting for the first call still waits for the slow one (the flags
// count every arrival: the wait also reads each rank's cell).
func TestFlagsCountRunsAhead(t *testing.T) {
	const n = 3
	var slowCame atomic.Bool
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		sh, err := madeShadow(ctx, c)
		if err != nil {
			return err
		}
		seq := reserveCalls(sh, 2) // the two calls below, numbered alike on every rank
		f, k := sh.flags, byte(kBarrier)
		switch c.Rank() {
		case 0: // gives call seq up, and goes on to seq+1
			f.Arrive(seq, k)
			f.Arrive(seq+1, k)
		case 1:
			f.Arrive(seq, k)
			if _, err := f.Wait(ctx, seq, k); err != nil {
				return err
			}
			if !slowCame.Load() {
				return errors.New("rank 1's wait for call seq ended before rank 2 came to it")
			}
			f.Arrive(seq+1, k)
		case 2:
			if err := c.Send(ctx, 0, 1, nil); err != nil { // a round trip: rank 0 has arrived twice
				return err
			}
			if _, _, err := c.Recv(ctx, 0, 1); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond) // rank 1 waits meanwhile
			slowCame.Store(true)
			f.Arrive(seq, k)
			f.Arrive(seq+1, k)
		}
		if c.Rank() == 0 {
			if _, _, err := c.Recv(ctx, 2, 1); err != nil {
				return err
			}
			if err := c.Send(ctx, 2, 1, nil); err != nil {
				return err
			}
		}
		if _, err := f.Wait(ctx, seq+1, k); err != nil {
			return err
		}
		return Barrier(ctx, c)
	})
}

// TestAllreduceLent: on ranks that share a host's memory, an Allreduce of
// more than a slot a rank runs with no message (each rank combines its
// block of everyone's lent data, then copies the others' blocks out of
// their results), right and the same to the last bit on every rank, at
// the slot's edge and far above, on 3 ranks (blocks of unequal length) and
// 4, for floats (the same to the last bit everywhere) and ints, with Sum
// and an Op of the program's own; with single copies off it takes the agreement, and is
// right too; a rank that cannot copy makes every rank take the agreement.
// A Reduce to each root likewise (only root copies the blocks).
func TestAllreduceLent(t *testing.T) {
	sizes := []int{shm.SlotData/8 + 1, 100_003} // float64s a rank
	lentModes(t, func(ctx context.Context, c *mpi.Comm, n int, mode string, agreed *atomic.Int32) error {
		want := int32(0) // calls that take the agreement
		if mode != "lent" {
			want = 1
		}
		for _, size := range sizes {
			data := make([]float64, size)
			ints := make([]int64, size)
			for i := range data {
				data[i] = 1 / float64(c.Rank()*size+i+1) // sums that round
				ints[i] = int64(c.Rank()*size + i)
			}
			got, err := Allreduce(ctx, c, data, Sum)
			if err != nil {
				return fmt.Errorf("rank %d: Allreduce of %d float64: %w", c.Rank(), size, err)
			}
			for i, v := range got {
				w := 0.0 // in rank order: the paths combine in their own
				for r := range n {
					w += 1 / float64(r*size+i+1)
				}
				if math.Abs(v-w) > 1e-12*w {
					return fmt.Errorf("rank %d: element %d of %d is %v, want %v", c.Rank(), i, size, v, w)
				}
			}
			all, err := Allgather(ctx, c, []float64{got[size/2], got[size-1]})
			if err != nil {
				return err
			}
			for r := 1; r < n; r++ {
				if all[2*r] != all[0] || all[2*r+1] != all[1] {
					return fmt.Errorf("rank %d's result differs from rank 0's", r)
				}
			}
			maxOf := func(acc, in []int64) {
				for i := range acc {
					acc[i] = max(acc[i], in[i])
				}
			}
			gotInts, err := Allreduce(ctx, c, ints, maxOf)
			if err != nil {
				return fmt.Errorf("rank %d: Allreduce of %d int64: %w", c.Rank(), size, err)
			}
			for i, v := range gotInts {
				if w := int64((n-1)*size + i); v != w {
					return fmt.Errorf("rank %d: max element %d of %d is %d, want %d", c.Rank(), i, size, v, w)
				}
			}
			for root := range n {
				red, err := Reduce(ctx, c, root, ints, Sum)
				switch {
				case err != nil:
					return fmt.Errorf("rank %d: Reduce to %d of %d int64: %w", c.Rank(), root, size, err)
				case c.Rank() != root && red != nil:
					return fmt.Errorf("rank %d: Reduce to %d: a result off root", c.Rank(), root)
				case c.Rank() == root && len(red) != size:
					return fmt.Errorf("rank %d: Reduce to %d: %d elements, want %d", c.Rank(), root, len(red), size)
				}
				for i, v := range red {
					if w := int64(n*i + size*n*(n-1)/2); v != w {
						return fmt.Errorf("rank %d: Reduce to %d: element %d of %d is %d, want %d", c.Rank(), root, i, size, v, w)
					}
				}
			}
			if a := agreed.Swap(0); a != int32(2+n)*want {
				return fmt.Errorf("rank %d: %d agreements in two Allreduces and %d Reduces of %d, want %d (the Allgather's on the flags)", c.Rank(), a, n, size, int32(2+n)*want)
			}
		}
		return Barrier(ctx, c)
	})
}

// TestAllreduceInto: AllreduceInto puts the result in out, apart from the
// data or in its place, lent (on ranks that share a host's memory) or by
// the bus, small and large, and in place where a rank cannot copy (every
// rank then takes the agreement, with the data as it was); and an out of
// another length fails the call on every rank with ErrCounts.
func TestAllreduceInto(t *testing.T) {
	const n = 3
	runs := map[string]func(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option){
		"bus": mpitest.Run, "shared": mpitest.RunShared, "copy-fails": mpitest.RunShared,
	}
	for where, run := range runs {
		t.Run(where, func(t *testing.T) {
			run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				if where == "copy-fails" {
					sh, err := madeShadow(ctx, c)
					if err != nil {
						return err
					}
					if c.Rank() == n-1 {
						sh.flags = &copyFails{Flags: sh.flags}
					}
				}
				for _, size := range []int{5, shm.SlotData, 100_000} { // int32s
					for _, inPlace := range []bool{false, true} {
						data := make([]int32, size)
						for i := range data {
							data[i] = int32(c.Rank()*size + i)
						}
						out := make([]int32, size)
						if inPlace {
							out = data
						}
						if err := AllreduceInto(ctx, c, data, out, Sum); err != nil {
							return fmt.Errorf("rank %d: %d int32, in place %v: %w", c.Rank(), size, inPlace, err)
						}
						for i, v := range out {
							if w := int32(n*i + size*(0+1+2)); v != w {
								return fmt.Errorf("rank %d: %d int32, in place %v: element %d is %d, want %d", c.Rank(), size, inPlace, i, v, w)
							}
						}
					}
				}
				data := make([]int32, 2000)
				err := AllreduceInto(ctx, c, data, make([]int32, 2000+c.Rank()%2), Sum)
				if !errors.Is(err, ErrCounts) {
					return fmt.Errorf("rank %d: an out of another length: %v, want ErrCounts", c.Rank(), err)
				}
				return Barrier(ctx, c)
			})
		})
	}
}

// TestGatherLent: on ranks that share a host's memory, a Gather or an
// Allgather where some ranks' data does not fit a slot runs with no
// message: those ranks lend it, and the readers (root, or all) copy it out
// of their memory; right with one rank lending or all, numbers and
// gob-encoded values, on 3 and 4 ranks; with single copies off it takes
// the agreement; a rank that cannot copy gets the lent data in messages.
func TestGatherLent(t *testing.T) {
	big := shm.SlotData // bytes: lent
	lentModes(t, func(ctx context.Context, c *mpi.Comm, n int, mode string, agreed *atomic.Int32) error {
		want := int32(0) // calls that take the agreement
		if mode == "single-copy=false" {
			want = 1
		}
		lenOf := func(r int, all bool) int {
			if all || r == 1 {
				return big + 1000*r
			}
			return 10 + r
		}
		for _, all := range []bool{false, true} {
			mine := make([]byte, lenOf(c.Rank(), all))
			for i := range mine {
				mine[i] = byte(c.Rank()*31 + i)
			}
			var wantAll []byte
			for r := range n {
				for i := range lenOf(r, all) {
					wantAll = append(wantAll, byte(r*31+i))
				}
			}
			got, err := Allgather(ctx, c, mine)
			if err != nil || !slices.Equal(got, wantAll) {
				return fmt.Errorf("rank %d: Allgather (all lend: %v): %d bytes, %v", c.Rank(), all, len(got), err)
			}
			for root := range n {
				got, err := Gather(ctx, c, root, mine)
				if err != nil || c.Rank() == root && !slices.Equal(got, wantAll) || c.Rank() != root && got != nil {
					return fmt.Errorf("rank %d: Gather to %d (all lend: %v): %d bytes, %v", c.Rank(), root, all, len(got), err)
				}
			}
			strs, err := Allgather(ctx, c, []string{strings.Repeat("s", lenOf(c.Rank(), all))})
			if err != nil || len(strs) != n || len(strs[1]) != lenOf(1, all) {
				return fmt.Errorf("rank %d: Allgather of strings (all lend: %v): %v", c.Rank(), all, err)
			}
			if a := agreed.Swap(0); a != int32(2+n)*want {
				return fmt.Errorf("rank %d: %d agreements in %d calls (all lend: %v), want %d", c.Rank(), a, 2+n, all, int32(2+n)*want)
			}
		}
		return Barrier(ctx, c)
	})
}

// TestFlagsGoneAfterArriving: a rank that came to a call, went on, and
// closed its world is no reason for a rank still waiting for another's
// arrival at that call to fail: the wait ends once the slow rank comes.
func TestFlagsGoneAfterArriving(t *testing.T) {
	const n = 3
	mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
		sh, err := madeShadow(ctx, c)
		if err != nil {
			return err
		}
		seq := reserveCalls(sh, 2)
		f, k := sh.flags, byte(kBarrier)
		switch c.Rank() {
		case 0: // comes, goes on, and leaves
			f.Arrive(seq, k)
			f.Arrive(seq+1, k)
			return nil
		case 1:
			f.Arrive(seq, k)
			if _, err := f.Wait(ctx, seq, k); err != nil {
				return fmt.Errorf("rank 1: %w", err)
			}
		case 2:
			if _, _, err := c.Recv(ctx, 0, 1); !errors.Is(err, mpi.ErrPeerLost) { // rank 0 is gone
				return fmt.Errorf("rank 2: a receive from rank 0: %v, want ErrPeerLost", err)
			}
			time.Sleep(100 * time.Millisecond) // rank 1 learns it too, and looks on its ticks
			f.Arrive(seq, k)
		}
		return nil
	})
}

// TestScatterLent: on ranks that share a host's memory, a Scatter of
// numbers runs with no message: from root's slot where its data fits
// (fewer elements than ranks too), else lent, each rank copying its block
// out of root's memory; from every root, on 3 and 4 ranks; with single
// copies off the lent sizes take the agreement; a rank that cannot copy
// gets its block in a message.
func TestScatterLent(t *testing.T) {
	sizes := []int{2, 100, shm.SlotData/8 - 1, shm.SlotData / 8, 100_003} // float64s
	lentModes(t, func(ctx context.Context, c *mpi.Comm, n int, mode string, agreed *atomic.Int32) error {
		for _, size := range sizes {
			want := int32(0)
			if mode == "single-copy=false" && size*8 >= shm.SlotData {
				want = 1
			}
			for root := range n {
				var data []float64
				if c.Rank() == root {
					data = make([]float64, size)
					for i := range data {
						data[i] = float64(root*1000000 + i)
					}
				}
				got, err := Scatter(ctx, c, root, data)
				if err != nil {
					return fmt.Errorf("rank %d: Scatter of %d from %d: %w", c.Rank(), size, root, err)
				}
				o := offsets(blockCounts(size, n))
				if len(got) != o[c.Rank()+1]-o[c.Rank()] {
					return fmt.Errorf("rank %d: Scatter of %d from %d: %d elements, want %d", c.Rank(), size, root, len(got), o[c.Rank()+1]-o[c.Rank()])
				}
				for i, v := range got {
					if w := float64(root*1000000 + o[c.Rank()] + i); v != w {
						return fmt.Errorf("rank %d: Scatter of %d from %d: element %d is %v, want %v", c.Rank(), size, root, i, v, w)
					}
				}
				if a := agreed.Swap(0); a != want {
					return fmt.Errorf("rank %d: Scatter of %d from %d: %d agreements, want %d", c.Rank(), size, root, a, want)
				}
			}
		}
		return Barrier(ctx, c)
	})
}

// lentModes runs body on n ranks of one host's segment, for n of 3 and 4,
// in each mode the lent collectives' tests take: "lent", the default;
// "single-copy=false", where nothing is lent (the agreement); and
// "copy-fails", where the last rank's copies fail (it says so, and gets
// the data otherwise). The shadow is made first (a Barrier); agreed counts
// this rank's calls that took the agreement from then on.
func lentModes(t *testing.T, body func(ctx context.Context, c *mpi.Comm, n int, mode string, agreed *atomic.Int32) error) {
	for _, n := range []int{3, 4} {
		for _, mode := range []string{"lent", "single-copy=false", "copy-fails"} {
			t.Run(fmt.Sprintf("n=%d/%s", n, mode), func(t *testing.T) {
				mpitest.RunShared(t, n, func(ctx context.Context, c *mpi.Comm) error {
					sh, agreed, err := countAgreements(ctx, c)
					if err != nil {
						return err
					}
					if mode == "copy-fails" && c.Rank() == n-1 {
						sh.flags = &copyFails{Flags: sh.flags}
					}
					return body(ctx, c, n, mode, agreed)
				}, mpi.WithSingleCopy(mode != "single-copy=false"))
			})
		}
	}
}
