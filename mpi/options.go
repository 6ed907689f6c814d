package mpi

import (
	"context"
	"fmt"
	"time"

	"github.com/gorun-hpc/gorun/internal/natsauth"
	"github.com/gorun-hpc/gorun/mpi/internal/memnet"
	"github.com/nats-io/nats.go"
)

// Option configures Init.
type Option func(*Options) error

// Options are the settings Init works with. The zero value is not useful;
// Init starts from DefaultOptions and applies the Option values in order.
type Options struct {
	// Timeout bounds how long Init waits for the bus and for every rank to
	// be ready.
	Timeout time.Duration
	// CloseTimeout bounds how long Close waits for sends still in flight.
	CloseTimeout time.Duration

	// JobID, Rank and Size place this process in a job. Init fills them
	// from the launch contract's GORUN_* variables unless WithJob set them.
	JobID      string
	Rank, Size int
	// URL is the NATS server (comma-separated for a cluster) and Token the
	// job's secret; from GORUN_NATS_URL and GORUN_NATS_TOKEN by default.
	URL, Token string
	// Creds are the rank's own NATS credentials, from GORUN_NATS_CREDS by
	// default: an nkey seed, or a user JWT and seed in the .creds format.
	Creds string
	// NATSOptions are applied after Init's own connection options.
	NATSOptions []nats.Option

	// EagerLimit is the largest message sent at once; larger ones wait for
	// the receiver to post a matching receive (rendezvous).
	EagerLimit int
	// EagerBudget bounds the bytes of unreceived small messages that all
	// senders together may push at this rank. Each peer gets an equal share,
	// never less than two full eager messages.
	EagerBudget int
	// RendezvousWindow bounds the bytes of large messages in flight towards
	// this rank, over all senders.
	RendezvousWindow int

	// Multicast lets SendAll (and the collectives built on it) have the
	// server fan one publish out to every rank. On by default.
	Multicast bool

	// SingleCopy lets a rank on the same machine as the sender of a large
	// message copy it straight out of the sender's memory (Linux's
	// process_vm_readv), with only the handshake on the bus. Where that is
	// not permitted, messages go through the bus in chunks. On by default.
	SingleCopy bool

	// SharedMemory lets the ranks of one host exchange their frames
	// through the shared-memory segment that the launcher made for them
	// (GORUN_SHM) rather than through the bus; the bus still carries
	// start-up, aborts and the frames to other hosts. On by default; it
	// takes effect only where there is a segment (gorun --shm=false makes
	// none).
	SharedMemory bool

	// AbortFunc ends this process when it calls Abort; nil means os.Exit.
	// mpitest sets its own. A rank whose job another rank aborts is not
	// ended by it: its calls fail with an *AbortError, and under gorun it
	// exits with the abort's code (os.Exit).
	AbortFunc func(code int)
	// ExitOnLoss makes a rank print why and exit(1) when its connection to
	// the bus is lost, after failing its blocked calls. On by default under
	// gorun, so that a rank never outlives its job.
	ExitOnLoss bool

	readHook func(pid int, addr uint64, buf []byte) error // replaces readRemote in tests
	// pidsOf says which process the launcher started as each of a list
	// of world ranks (see vouch): askPids, or a test's stand-in.
	pidsOf func(ctx context.Context, ranks []int) (map[int]int, bool)
	pid    int // the pid this rank announces and offers; 0: its own (tests: a rank that lies)

	segment   string         // the shared-memory segment to open (GORUN_SHM, WithSegment); "" for none
	localRank int            // this rank's place in it (GORUN_LOCAL_RANK)
	shmSpin   *time.Duration // tests: how long the ring poller spins before it sleeps (nil: by the host's cores)
	shmWait   time.Duration  // tests: the longest it sleeps at once (0: 100 ms)

	fromEnv bool          // the job came from the launch environment
	envTLS  []nats.Option // TLS files the launch environment names
	jobSet  bool          // WithJob was given

	memory *memnet.Network // tests: the in-memory network to join over, in place of NATS (seam.MemoryNetwork)
}

// DefaultOptions returns the settings Init starts from.
func DefaultOptions() Options {
	return Options{
		Timeout:          30 * time.Second,
		CloseTimeout:     30 * time.Second,
		EagerLimit:       64 << 10,
		EagerBudget:      64 << 20,
		RendezvousWindow: 32 << 20,
		Multicast:        true,
		SingleCopy:       true,
		SharedMemory:     true,
	}
}

// WithMulticast sets whether SendAll may use one publish that the server fans
// out to every rank (default on); off, it sends to each rank in turn.
func WithMulticast(on bool) Option {
	return func(o *Options) error {
		o.Multicast = on
		return nil
	}
}

// WithSingleCopy sets whether ranks on one machine may copy large messages
// straight out of each other's memory (default on); off, every byte goes
// through the bus.
func WithSingleCopy(on bool) Option {
	return func(o *Options) error {
		o.SingleCopy = on
		return nil
	}
}

// WithTimeout sets how long Init waits for the bus and for every rank to be
// ready (default 30 s). A rank that never shows up makes Init fail, naming it.
func WithTimeout(d time.Duration) Option {
	return func(o *Options) error {
		if d <= 0 {
			return fmt.Errorf("mpi: WithTimeout(%v): must be positive", d)
		}
		o.Timeout = d
		return nil
	}
}

// WithJob places the process in a job without the launch environment: the
// job id shared by every rank, this rank and the world size.
func WithJob(jobID string, rank, size int) Option {
	return func(o *Options) error {
		if size < 1 || rank < 0 || rank >= size {
			return errorf("mpi: WithJob: rank %d of size %d: %w", rank, size, ErrRank)
		}
		o.JobID, o.Rank, o.Size, o.jobSet = jobID, rank, size, true
		return nil
	}
}

// WithNATS sets the bus's URL and the job's token instead of
// GORUN_NATS_URL and GORUN_NATS_TOKEN, and adds nats.go options for the
// connection (for example nats.InProcessServer). Init always turns
// reconnection off: a rank never reconnects.
func WithNATS(url, token string, opts ...nats.Option) Option {
	return func(o *Options) error {
		o.URL, o.Token = url, token
		o.NATSOptions = append(o.NATSOptions, opts...)
		return nil
	}
}

// WithCredentials sets the rank's own NATS credentials instead of
// GORUN_NATS_CREDS: an nkey seed ("SU..."), or a user JWT and its seed in
// the .creds format.
func WithCredentials(creds string) Option {
	return func(o *Options) error {
		if _, err := natsauth.Option(creds); err != nil {
			return fmt.Errorf("mpi: WithCredentials: %v", err)
		}
		o.Creds = creds
		return nil
	}
}

// WithEagerLimit sets the largest message that is sent without waiting for
// the receiver (default 64 KiB). Larger messages use rendezvous.
func WithEagerLimit(n int) Option {
	return func(o *Options) error {
		if n < 0 {
			return fmt.Errorf("mpi: WithEagerLimit(%d): must not be negative", n)
		}
		o.EagerLimit = n
		return nil
	}
}

// WithBuffers sets the receive-side memory bounds: eager is the budget for
// unreceived small messages from all peers (default 64 MiB), window the bytes
// of large messages in flight towards this rank (default 32 MiB).
func WithBuffers(eager, window int) Option {
	return func(o *Options) error {
		if eager <= 0 || window <= 0 {
			return fmt.Errorf("mpi: WithBuffers(%d, %d): must be positive", eager, window)
		}
		o.EagerBudget, o.RendezvousWindow = eager, window
		return nil
	}
}

// WithAbortFunc replaces os.Exit as the way Abort ends this rank. The function
// must not return normally for Abort to keep its promise; mpitest's calls
// runtime.Goexit.
func WithAbortFunc(f func(code int)) Option {
	return func(o *Options) error {
		o.AbortFunc = f
		return nil
	}
}

// WithExitOnLoss sets whether a lost connection ends the process (default:
// on under gorun, off otherwise).
func WithExitOnLoss(on bool) Option {
	return func(o *Options) error {
		o.ExitOnLoss = on
		return nil
	}
}
