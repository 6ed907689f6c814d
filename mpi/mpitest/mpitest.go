// Package mpitest runs the ranks of a job as goroutines of one process, on an
// in-process NATS server, the way httptest runs a server: for fast unit
// tests, godoc Examples and debugging, on top of (never instead of) tests
// with real processes under gorun.
//
//	func TestRing(t *testing.T) {
//		mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
//			next := (c.Rank() + 1) % c.Size()
//			prev := (c.Rank() + c.Size() - 1) % c.Size()
//			_, _, err := c.Sendrecv(ctx, next, 0, []byte{byte(c.Rank())}, prev, 0)
//			return err
//		})
//	}
//
// A Net runs the same ranks over an in-memory network instead, with seeded
// faults: frames delayed, frames of different senders reordered (one
// sender's never are), a rank cut off or stopped. Quiet checks, at a
// barrier, that no rank holds anything of the traffic before it. mpi's and
// the collectives' conformance suites run over both.
package mpitest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/gorun-hpc/gorun/internal/bus"
	"github.com/gorun-hpc/gorun/internal/invariant"
	"github.com/gorun-hpc/gorun/mpi/internal/memnet"
	"github.com/gorun-hpc/gorun/mpi/internal/seam"

	"github.com/gorun-hpc/gorun/mpi"
)

// DefaultTimeout bounds a World whose ctx has no deadline, and every Run:
// a job that hangs fails its own test, with the ranks' blocked calls
// named, and leaves the rest of the test binary's time to the tests after
// it.
const DefaultTimeout = 5 * time.Minute

// Run runs fn as every rank of an n-rank job and fails t, naming the rank,
// if any fn returns an error, panics, calls Abort, or DefaultTimeout (or
// the test's deadline, if sooner) passes first. The first rank to fail cancels the
// others' ctx. Everything is shut down when Run returns.
func Run(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
	t.Helper()
	ctx, cancel := testContext(t)
	defer cancel()
	if err := World(ctx, n, fn, opts...); err != nil {
		t.Fatal(err)
	}
}

// testContext is a context that ends after DefaultTimeout, or shortly
// before t's deadline if that comes first.
func testContext(t testing.TB) (context.Context, context.CancelFunc) {
	end := time.Now().Add(DefaultTimeout)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && dl.Add(-2*time.Second).Before(end) {
			end = dl.Add(-2 * time.Second)
		}
	}
	return context.WithDeadline(context.Background(), end)
}

// prepare checks a job's size, and bounds ctx by DefaultTimeout if it has
// no deadline.
func prepare(ctx context.Context, n int) (context.Context, context.CancelFunc, error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("mpitest: %d ranks: need at least 1", n)
	}
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		return ctx, cancel, nil
	}
	return ctx, func() {}, nil
}

// World is Run without testing.TB, for Examples and tools: it runs fn as
// every rank of an n-rank job and returns the first failure, as an error
// that names the rank and wraps what it returned. A rank that calls Abort
// is named rather than one that only saw the abort (ErrAborted), whichever
// reported first.
func World(ctx context.Context, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) error {
	return world(ctx, n, fn, opts, nil)
}

// world is World; each rank also gets the options perRank gives it, when
// not nil.
func world(ctx context.Context, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts []mpi.Option, perRank func(rank int) []mpi.Option) error {
	ctx, cancel, err := prepare(ctx, n)
	if err != nil {
		return err
	}
	defer cancel()
	// The job's server is gorun's (its limits, and a key for each rank that
	// lets it publish only as itself), in this process and listening
	// nowhere, with chunks of 1 MiB (a test crosses a chunk boundary with
	// a small message).
	job := uuid.NewString()
	users, seeds, err := bus.JobKeys(job, n)
	if err != nil {
		return fmt.Errorf("mpitest: %w", err)
	}
	s, err := bus.Start(&bus.Spec{Name: "mpitest", JobID: job, Size: n, Users: users, InProcess: true, MaxPayload: 1 << 20})
	if err != nil {
		return fmt.Errorf("mpitest: start server: %w", err)
	}
	defer s.Shutdown()
	return run(ctx, job, n, fn, opts, func(ctx context.Context, rank int) (context.Context, []mpi.Option) {
		conn := []mpi.Option{mpi.WithNATS("", "", nats.InProcessServer(s)), mpi.WithCredentials(seeds[rank])}
		if perRank != nil {
			conn = append(conn, perRank(rank)...)
		}
		return ctx, conn
	})
}

// run runs fn as every rank of job; join gives each rank the ctx and the
// options that connect it.
func run(ctx context.Context, job string, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts []mpi.Option, join func(ctx context.Context, rank int) (context.Context, []mpi.Option)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu          sync.Mutex
		first       error
		consequence bool // first is another rank's ErrAborted, not the Abort itself
		wg          sync.WaitGroup
	)
	// report keeps the first failure; but the rank that called Abort wins
	// over a rank that merely saw the abort (ErrAborted), which may report
	// first: Abort tells the others before it ends its own rank.
	report := func(rank int, err error, abortCall bool) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil || (consequence && abortCall) {
			first = fmt.Errorf("rank %d: %w", rank, err)
			consequence = errors.Is(err, mpi.ErrAborted)
			cancel()
		}
	}
	for rank := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			returned := false
			var aborted *int
			defer func() {
				if p := recover(); p != nil {
					buf := make([]byte, 16<<10)
					buf = buf[:runtime.Stack(buf, false)]
					report(rank, fmt.Errorf("panic: %v\n%s", p, buf), false)
					return
				}
				switch {
				case aborted != nil:
					report(rank, fmt.Errorf("called Abort(%d)", *aborted), true)
				case !returned:
					report(rank, errors.New("exited without returning (runtime.Goexit, t.FailNow?)"), false)
				}
			}()
			ictx, conn := join(ctx, rank)
			all := append([]mpi.Option{
				mpi.WithJob(job, rank, n),
				mpi.WithAbortFunc(func(code int) { aborted = &code; runtime.Goexit() }),
				mpi.WithExitOnLoss(false),
			}, conn...)
			c, err := mpi.Init(ictx, append(all, opts...)...)
			if err != nil {
				returned = true
				report(rank, err, false)
				return
			}
			err = fn(ctx, c)
			returned = true
			if err != nil {
				// Before Close: the others may fail because this rank
				// left (ErrPeerLost), which must not come first.
				report(rank, err, false)
				c.Close()
				return
			}
			if cerr := c.Close(); cerr != nil && !errors.Is(cerr, mpi.ErrClosed) {
				report(rank, cerr, false)
			}
		}()
	}
	wg.Wait()
	return first
}

// Faults are what a Net does to the frames of a job: all drawn from Seed,
// so that a failing seed replays the same choices (goroutine scheduling
// aside).
type Faults struct {
	// Seed seeds every random choice.
	Seed uint64
	// MaxDelay bounds the delay of each frame, drawn from [0, MaxDelay);
	// a frame never overtakes an earlier one of its sender and stream.
	MaxDelay time.Duration
	// Reorder delivers the frames due at a rank in a random order across
	// senders, and across its inbox and multicast streams; one sender's
	// frames on one stream always arrive in the order sent.
	Reorder bool
	// MaxPending, when positive, drops a rank for which more bytes wait
	// (a slow consumer, as a NATS server drops one); its peers see it
	// lost.
	MaxPending int64
}

// Net runs jobs over an in-memory network in place of the in-process NATS
// server, with the faults it was made with; during a job, Cut, Stop and
// Resume act on it. The mpi and collectives conformance suites run over
// both, as a check that nothing in them depends on NATS's timing.
//
//	net := mpitest.NewNet(mpitest.Faults{Seed: 7, MaxDelay: time.Millisecond, Reorder: true})
//	net.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error { ... })
//
// A Net runs one job at a time.
type Net struct {
	f  Faults
	mu sync.Mutex
	n  *memnet.Network
}

// NewNet returns a Net that injects f.
func NewNet(f Faults) *Net { return &Net{f: f} }

// Run is the package's Run over the Net.
func (net *Net) Run(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
	t.Helper()
	ctx, cancel := testContext(t)
	defer cancel()
	if err := net.World(ctx, n, fn, opts...); err != nil {
		t.Fatal(err)
	}
}

// World is the package's World over the Net.
func (net *Net) World(ctx context.Context, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) error {
	ctx, cancel, err := prepare(ctx, n)
	if err != nil {
		return err
	}
	defer cancel()
	mn := memnet.New(n, memnet.Config{Seed: net.f.Seed, MaxDelay: net.f.MaxDelay, Reorder: net.f.Reorder, MaxPending: net.f.MaxPending})
	net.mu.Lock()
	net.n = mn
	net.mu.Unlock()
	return run(ctx, uuid.NewString(), n, fn, opts, func(ctx context.Context, rank int) (context.Context, []mpi.Option) {
		return ctx, []mpi.Option{seam.MemoryNetwork(mn).(mpi.Option)}
	})
}

// network is the running (or last) job's network, for op on rank; a rank
// outside the job is a test's mistake, named in the panic.
func (net *Net) network(op string, rank int) *memnet.Network {
	net.mu.Lock()
	defer net.mu.Unlock()
	switch {
	case net.n == nil:
		panic(fmt.Sprintf("mpitest: Net.%s(%d): no job has started", op, rank))
	case rank < 0 || rank >= net.n.Size():
		panic(fmt.Sprintf("mpitest: Net.%s(%d): the job has ranks 0 to %d", op, rank, net.n.Size()-1))
	}
	return net.n
}

// Cut cuts rank off the running job: what it sent and is in flight is
// lost, its operations fail (its connection is lost), and every peer's
// operation that waits for it fails with an error wrapping mpi.ErrPeerLost.
func (net *Net) Cut(rank int) { net.network("Cut", rank).Cut(rank) }

// Stop stops delivering frames to rank, as if the process were stopped
// (SIGSTOP, a debugger): what is sent to it waits, counted against
// Faults.MaxPending.
func (net *Net) Stop(rank int) { net.network("Stop", rank).Stop(rank) }

// Resume delivers to rank again after Stop.
func (net *Net) Resume(rank int) { net.network("Resume", rank).Resume(rank) }

// Pending is how many bytes wait for rank now, and the most that ever
// did, in the running or last job. Cut, Stop, Resume and Pending panic,
// naming the call, on a rank outside the job or before any job started.
func (net *Net) Pending(rank int) (now, peak int64) {
	return net.network("Pending", rank).Pending(rank)
}

// quietTag is the tag of Quiet's messages.
const quietTag = mpi.MaxTag

// Quiet is a barrier on c that also checks, on every rank, that the rank
// holds nothing of the traffic before it: no posted receive or unexpected
// message, no send or rendezvous in progress, no queued send, the
// rendezvous window back to its full size, no unexpected bytes charged to
// a peer. Each rank checks when no rank can send it anything new: rank 0
// once every rank has arrived and before it releases them, each other rank
// once released and before it tells rank 0 it has checked; rank 0 then
// lets every rank go on. Give it a communicator of its own (a Dup), so
// that a wildcard receive of the traffic it follows never takes its
// messages. On a rank that still holds something it returns an error
// naming it, once the barrier is through on every rank.
func Quiet(ctx context.Context, c *mpi.Comm) error {
	var found error
	check := func() error {
		found = invariant.Quiescent(c)
		return nil
	}
	if c.Rank() != 0 {
		for _, step := range []func() error{
			func() error { return c.Send(ctx, 0, quietTag, nil) },
			func() error { _, _, err := c.Recv(ctx, 0, quietTag); return err },
			check,
			func() error { return c.Send(ctx, 0, quietTag, nil) },
			func() error { _, _, err := c.Recv(ctx, 0, quietTag); return err },
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return found
	}
	gather := func() error {
		for r := 1; r < c.Size(); r++ {
			if _, _, err := c.Recv(ctx, r, quietTag); err != nil {
				return err
			}
		}
		return nil
	}
	release := func() error {
		for r := 1; r < c.Size(); r++ {
			if err := c.Send(ctx, r, quietTag, nil); err != nil {
				return err
			}
		}
		return nil
	}
	for _, step := range []func() error{gather, check, release, gather, release} {
		if err := step(); err != nil {
			return err
		}
	}
	return found
}

// Chaos is the faults that the mpi and collectives suites run under on a
// Net: delays of up to 300 µs per frame and frames reordered across
// senders and streams, drawn from seed, or from the clock when seed is 0.
// If t fails, it logs the seed and the command that replays it: the test
// alone, with replay=SEED, where replay is the package and its seed flag
// as on the command line ("./mpi -memory.seed").
func Chaos(t testing.TB, seed uint64, replay string) Faults {
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("faults drawn from seed %d: replay with go test %s=%d -run '^%s$'", seed, replay, seed, t.Name())
		}
	})
	return Faults{Seed: seed, MaxDelay: 300 * time.Microsecond, Reorder: true}
}
