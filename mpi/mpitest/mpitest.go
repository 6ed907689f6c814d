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
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/subject"

	"github.com/gorun-hpc/gorun/mpi"
)

// DefaultTimeout bounds a World whose ctx has no deadline, and a Run whose
// test has none.
const DefaultTimeout = 2 * time.Minute

// Run runs fn as every rank of an n-rank job and fails t, naming the rank,
// if any fn returns an error, panics, calls Abort, or the test's deadline
// (or DefaultTimeout) passes first. The first rank to fail cancels the
// others' ctx. Everything is shut down when Run returns.
func Run(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
	t.Helper()
	ctx := context.Background()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-2*time.Second))
			defer cancel()
		}
	}
	if err := World(ctx, n, fn, opts...); err != nil {
		t.Fatal(err)
	}
}

// World is Run without testing.TB, for Examples and tools: it runs fn as
// every rank of an n-rank job and returns the first failure, as an error
// that names the rank and wraps what it returned. A rank that calls Abort
// is named rather than one that only saw the abort (ErrAborted), whichever
// reported first.
func World(ctx context.Context, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) error {
	if n < 1 {
		return fmt.Errorf("mpitest: %d ranks: need at least 1", n)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	// Each rank has a key of its own that lets it publish only as itself,
	// as under gorun.
	job := uuid.NewString()
	users := make([]*server.NkeyUser, n)
	seeds := make([]string, n)
	for r := range n {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return fmt.Errorf("mpitest: rank %d's key: %w", r, err)
		}
		pubKey, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		pub, sub := subject.Permissions(job, r)
		users[r] = &server.NkeyUser{Nkey: pubKey, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub},
		}}
		seeds[r] = string(seed)
	}
	s, err := server.NewServer(&server.Options{
		DontListen: true,
		NoLog:      true,
		NoSigs:     true,
		MaxPending: 256 << 20,
		Nkeys:      users,
	})
	if err != nil {
		return fmt.Errorf("mpitest: start server: %w", err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		return errors.New("mpitest: the in-process server did not start")
	}
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
			all := append([]mpi.Option{
				mpi.WithJob(job, rank, n),
				mpi.WithNATS("", "", nats.InProcessServer(s)),
				mpi.WithCredentials(seeds[rank]),
				mpi.WithAbortFunc(func(code int) { aborted = &code; runtime.Goexit() }),
				mpi.WithExitOnLoss(false),
			}, opts...)
			c, err := mpi.Init(ctx, all...)
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
