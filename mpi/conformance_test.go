package mpi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// A conformance case runs on every rank of a communicator and returns an
// error naming what went wrong. The same cases run on goroutine ranks
// (TestConformance) and on real processes (TestProcesses).
type confCase struct {
	name string
	fn   func(ctx context.Context, c *mpi.Comm) error
}

var confCases = []confCase{
	{"ring", caseRing},
	{"pairwise", casePairwise},
	{"anysource", caseAnySource},
	{"order", caseOrder},
	{"tags", caseTagMatching},
	{"probe", caseProbe},
	{"self", caseSelf},
	{"sizes", caseSizes},
	{"slices", caseSlices},
	{"isolation", caseIsolation},
	{"split", caseSplit},
	{"sendall", caseSendAll},
	{"ssend", caseSsend},
}

// suite runs every case on c, on c.Dup and on c.Split by parity, with a
// barrier between cases so that one case's traffic never meets another's,
// after which the rank must be quiet (Comm.Quiescent: no request, grant
// or unexpected message left, the rendezvous window back to full).
func suite(ctx context.Context, c *mpi.Comm) error {
	comms := []struct {
		name string
		c    *mpi.Comm
	}{{"world", c}}
	d, err := c.Dup(ctx)
	if err != nil {
		return fmt.Errorf("dup: %w", err)
	}
	comms = append(comms, struct {
		name string
		c    *mpi.Comm
	}{"dup", d})
	s, err := c.Split(ctx, c.Rank()%2, -c.Rank()) // reversed order inside each half
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	comms = append(comms, struct {
		name string
		c    *mpi.Comm
	}{"split", s})
	for _, cc := range comms {
		// Barriers on a communicator of their own, so that AnyTag receives
		// of a case never see them.
		bc, err := cc.c.Dup(ctx)
		if err != nil {
			return err
		}
		for _, k := range confCases {
			if err := k.fn(ctx, cc.c); err != nil {
				return fmt.Errorf("%s on %s (size %d, rank %d): %w", k.name, cc.name, cc.c.Size(), cc.c.Rank(), err)
			}
			if err := mpitest.Quiet(ctx, bc); err != nil {
				return fmt.Errorf("after %s on %s: %w", k.name, cc.name, err)
			}
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, suite)
		})
	}
}

// TestConformanceChunked runs the suite with single copies off, through
// the server and over the in-memory network with faults: in-process ranks
// otherwise copy every rendezvous message out of the sender's memory, and
// no chunk frame is ever carried.
func TestConformanceChunked(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("server/n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, suite, mpi.WithSingleCopy(false), mpi.WithSharedMemory(false))
		})
		t.Run(fmt.Sprintf("memory/n=%d", n), func(t *testing.T) {
			f := mpitest.Chaos(t, *memorySeed, "./mpi -memory.seed")
			mpitest.NewNet(f).Run(t, n, suite, mpi.WithSingleCopy(false))
		})
	}
}

// TestConformanceMemory runs the suite over the in-memory transport, with
// seeded delays and frames reordered across senders and streams: what
// passes over NATS must not depend on its timing. A failure names its
// seed; -memory.seed replays it.
func TestConformanceMemory(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			f := mpitest.Chaos(t, *memorySeed, "./mpi -memory.seed")
			mpitest.NewNet(f).Run(t, n, suite)
		})
	}
}

func caseRing(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	token := []byte{0}
	for lap := range 3 {
		if r == 0 {
			if err := c.Send(ctx, next, 1, []byte{token[0] + 1}); err != nil {
				return err
			}
			got, st, err := c.Recv(ctx, prev, 1)
			if err != nil {
				return err
			}
			if want := byte((lap + 1) * n); got[0] != want || st.Source != prev || st.Tag != 1 || st.Count != 1 {
				return fmt.Errorf("lap %d: token %d from %d (tag %d, count %d), want %d from %d", lap, got[0], st.Source, st.Tag, st.Count, want, prev)
			}
			token = []byte{got[0]}
			continue
		}
		got, _, err := c.Recv(ctx, prev, 1)
		if err != nil {
			return err
		}
		if err := c.Send(ctx, next, 1, []byte{got[0] + 1}); err != nil {
			return err
		}
	}
	return nil
}

// caseSsend: synchronous sends around the ring, empty, eager-sized and
// rendezvous-sized, each received by the rank it went to: an Issend is
// complete only after its receive (the next rank's Recv) has matched it.
func caseSsend(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	for _, size := range []int{0, 100, 200 << 10} {
		data := bytes.Repeat([]byte{byte(r)}, size)
		req := c.Issend(next, 4, data)
		got, st, err := c.Recv(ctx, prev, 4)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, bytes.Repeat([]byte{byte(prev)}, size)) || st.Count != size {
			return fmt.Errorf("%d bytes from %d, count %d; want %d bytes of %d", len(got), st.Source, st.Count, size, prev)
		}
		if _, err := req.Wait(ctx); err != nil {
			return fmt.Errorf("Issend of %d bytes: %w", size, err)
		}
	}
	return nil
}

// casePairwise: every rank sends a distinct message to every rank (itself
// too) with Isend and receives them with Irecv, by source.
func casePairwise(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	var reqs []*mpi.Request
	recvs := make([]*mpi.Request, n)
	for s := range n {
		recvs[s] = c.Irecv(s, 7)
	}
	for d := range n {
		reqs = append(reqs, c.Isend(d, 7, fmt.Appendf(nil, "%d->%d", r, d)))
	}
	if err := mpi.WaitAll(ctx, append(reqs, recvs...)...); err != nil {
		return err
	}
	for s, q := range recvs {
		if got, want := string(q.Data()), fmt.Sprintf("%d->%d", s, r); got != want {
			return fmt.Errorf("from %d got %q, want %q", s, got, want)
		}
	}
	return nil
}

// caseAnySource: rank 0 takes k messages from every other rank with
// AnySource/AnyTag; each sender's messages arrive in order.
func caseAnySource(ctx context.Context, c *mpi.Comm) error {
	const k = 20
	n, r := c.Size(), c.Rank()
	if r != 0 {
		for i := range k {
			if err := c.Send(ctx, 0, i%3, []byte{byte(r), byte(i)}); err != nil {
				return err
			}
		}
		return nil
	}
	next := make([]int, n)
	for range k * (n - 1) {
		b, st, err := c.Recv(ctx, mpi.AnySource, mpi.AnyTag)
		if err != nil {
			return err
		}
		if len(b) != 2 || int(b[0]) != st.Source || st.Tag != int(b[1])%3 {
			return fmt.Errorf("status %+v for message %v", st, b)
		}
		if int(b[1]) != next[st.Source] {
			return fmt.Errorf("from %d got message %d, want %d", st.Source, b[1], next[st.Source])
		}
		next[st.Source]++
	}
	return nil
}

// caseOrder: many messages on one (source, tag) arrive in order, mixing
// eager and rendezvous sizes.
func caseOrder(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	sizes := []int{1, 100, 70 << 10, 3, 200 << 10, 0, 5}
	var reqs []*mpi.Request
	for i, sz := range sizes {
		b := bytes.Repeat([]byte{byte(i)}, sz)
		reqs = append(reqs, c.Isend(next, 3, b))
	}
	for i, sz := range sizes {
		b, st, err := c.Recv(ctx, prev, 3)
		if err != nil {
			return err
		}
		if len(b) != sz || st.Count != sz || (sz > 0 && (b[0] != byte(i) || b[sz-1] != byte(i))) {
			return fmt.Errorf("message %d: got %d bytes (count %d), want %d of %d", i, len(b), st.Count, sz, i)
		}
	}
	return mpi.WaitAll(ctx, reqs...)
}

// caseTagMatching: a receive for a later tag skips earlier messages with
// other tags, which stay for their own receives.
func caseTagMatching(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	s1 := c.Isend(next, 11, []byte("first"))
	s2 := c.Isend(next, 12, []byte("second"))
	b2, _, err := c.Recv(ctx, prev, 12)
	if err != nil {
		return err
	}
	b1, _, err := c.Recv(ctx, prev, 11)
	if err != nil {
		return err
	}
	if string(b1) != "first" || string(b2) != "second" {
		return fmt.Errorf("got %q and %q", b1, b2)
	}
	return mpi.WaitAll(ctx, s1, s2)
}

func caseProbe(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	s := c.Isend(next, 21, make([]byte, 100<<10+r))
	st, err := c.Probe(ctx, mpi.AnySource, 21)
	if err != nil {
		return err
	}
	if st.Source != prev || st.Tag != 21 || st.Count != 100<<10+prev {
		return fmt.Errorf("probe: %+v", st)
	}
	b, _, err := c.Recv(ctx, st.Source, st.Tag)
	if err != nil {
		return err
	}
	if len(b) != st.Count {
		return fmt.Errorf("probe said %d bytes, recv got %d", st.Count, len(b))
	}
	_, err = s.Wait(ctx)
	return err
}

func caseSelf(ctx context.Context, c *mpi.Comm) error {
	big := bytes.Repeat([]byte{9}, 2<<20)
	s := c.Isend(c.Rank(), 31, big)
	b, st, err := c.Recv(ctx, c.Rank(), 31)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, big) || st.Source != c.Rank() {
		return fmt.Errorf("self message: %d bytes from %d", len(b), st.Source)
	}
	if _, err := s.Wait(ctx); err != nil {
		return err
	}
	return nil
}

// caseSizes: the protocol's boundaries arrive byte-exact.
func caseSizes(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	for _, sz := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 1<<20 - 40, 1 << 20, 1<<20 + 1, 5<<20 + 3} {
		b := pattern(sz, r)
		got, st, err := c.Sendrecv(ctx, next, 41, b, prev, 41)
		if err != nil {
			return fmt.Errorf("size %d: %w", sz, err)
		}
		if st.Count != sz || !bytes.Equal(got, pattern(sz, prev)) {
			return fmt.Errorf("size %d: got %d bytes (count %d), content differs", sz, len(got), st.Count)
		}
	}
	return nil
}

// pattern returns n pseudo-random bytes for seed. The period, 4099, is
// prime, so chunks moved, dropped or repeated at any power-of-two boundary
// change the content.
func pattern(n, seed int) []byte {
	const period = 4099
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range min(n, period) {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	for i := period; i < n; i *= 2 {
		copy(b[i:], b[:i])
	}
	return b
}

func caseSlices(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	if err := sliceRound(ctx, c, next, prev, []float64{1.5, -2, float64(r)}); err != nil {
		return err
	}
	if err := sliceRound(ctx, c, next, prev, []int32{int32(r), -7, 1 << 30}); err != nil {
		return err
	}
	if err := sliceRound(ctx, c, next, prev, []complex128{complex(float64(r), -1)}); err != nil {
		return err
	}
	if err := sliceRound(ctx, c, next, prev, []uint8{}); err != nil {
		return err
	}
	big := make([]int64, 300_000) // 2.4 MB: rendezvous
	for i := range big {
		big[i] = int64(i * r)
	}
	return sliceRound(ctx, c, next, prev, big)
}

func sliceRound[T mpi.Number](ctx context.Context, c *mpi.Comm, next, prev int, mine []T) error {
	s := c.Isend(next, 51, mpi.AsBytes(mine))
	got, st, err := mpi.RecvSlice[T](ctx, c, prev, 51)
	if err != nil {
		return err
	}
	if _, err := s.Wait(ctx); err != nil {
		return err
	}
	if len(got) != len(mine) || st.Count != len(mine)*int(sizeOf[T]()) {
		return fmt.Errorf("%T: got %d elements (%d bytes), want %d", mine, len(got), st.Count, len(mine))
	}
	// The neighbour's slice has the same shape; check the parts that do not
	// depend on the rank.
	if len(mine) == 3 {
		if got[1] != mine[1] {
			return fmt.Errorf("%T: got %v, sent %v", mine, got, mine)
		}
	}
	return nil
}

func sizeOf[T mpi.Number]() uintptr {
	var zero [1]T
	return uintptr(len(mpi.AsBytes(zero[:])))
}

// caseIsolation: the same (source, tag) on two communicators never mix.
func caseIsolation(ctx context.Context, c *mpi.Comm) error {
	d, err := c.Dup(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	n, r := c.Size(), c.Rank()
	next, prev := (r+1)%n, (r+n-1)%n
	s1 := c.Isend(next, 61, []byte("parent"))
	s2 := d.Isend(next, 61, []byte("dup"))
	b, _, err := d.Recv(ctx, prev, 61)
	if err != nil {
		return err
	}
	if string(b) != "dup" {
		return fmt.Errorf("dup received %q", b)
	}
	b, _, err = c.Recv(ctx, mpi.AnySource, mpi.AnyTag)
	if err != nil {
		return err
	}
	if string(b) != "parent" {
		return fmt.Errorf("parent received %q", b)
	}
	return mpi.WaitAll(ctx, s1, s2)
}

// caseSplit: Split by color and key gives the expected groups and order,
// and a negative color gives no communicator.
func caseSplit(ctx context.Context, c *mpi.Comm) error {
	n, r := c.Size(), c.Rank()
	color := r % 3
	if r == n-1 && n > 1 {
		color = -1
	}
	s, err := c.Split(ctx, color, n-r)
	if err != nil {
		return err
	}
	if color < 0 {
		if s != nil {
			return errors.New("negative color gave a communicator")
		}
		return nil
	}
	var members []int // parent ranks with my color, by key n-r: descending rank
	for q := n - 1; q >= 0; q-- {
		if q%3 == color && !(q == n-1 && n > 1) {
			members = append(members, q)
		}
	}
	if s.Size() != len(members) || members[s.Rank()] != r {
		return fmt.Errorf("split: rank %d of %d, want position of %d in %v", s.Rank(), s.Size(), r, members)
	}
	// Everyone in the new communicator says hello to everyone.
	var reqs []*mpi.Request
	for d := range s.Size() {
		reqs = append(reqs, s.Isend(d, 71, []byte{byte(r)}))
	}
	var got []int
	for range s.Size() {
		b, st, err := s.Recv(ctx, mpi.AnySource, 71)
		if err != nil {
			return err
		}
		if int(b[0]) != members[st.Source] {
			return fmt.Errorf("split: status source %d but parent rank %d", st.Source, b[0])
		}
		got = append(got, int(b[0]))
	}
	slices.Sort(got)
	want := slices.Clone(members)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("split: heard from %v, want %v", got, want)
	}
	return mpi.WaitAll(ctx, reqs...)
}
