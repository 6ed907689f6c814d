package mpi

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/gorun-hpc/gorun/internal/contract"
	"github.com/gorun-hpc/gorun/internal/subject"
)

// The launch contract's environment variables (internal/contract names
// them for gorun and mpi alike).
const (
	EnvRank      = contract.Rank
	EnvSize      = contract.Size
	EnvLocalRank = contract.LocalRank
	EnvLocalSize = contract.LocalSize
	EnvJobID     = contract.JobID
	EnvNATSURL   = contract.NATSURL
	EnvNATSToken = contract.NATSToken
	// EnvNATSCreds holds the rank's own NATS credentials, when gorun made
	// some for it: a bare nkey seed (the embedded server), or a user JWT
	// and its seed in the .creds format (minted for a shared server).
	EnvNATSCreds = contract.NATSCreds
	// EnvNATSCA, EnvNATSCert and EnvNATSKey name PEM files for TLS to a
	// shared server (gorun's --nats-ca, --nats-cert and --nats-key): the
	// CA of the server's certificate, and a client certificate and its key.
	EnvNATSCA   = contract.NATSCA
	EnvNATSCert = contract.NATSCert
	EnvNATSKey  = contract.NATSKey
	// EnvSharedMemory is the shared-memory segment that the launcher made
	// for the ranks of this host: a rank opens it as its local rank
	// (EnvLocalRank) and talks to the ranks of its host through it.
	EnvSharedMemory = contract.SharedMemory
)

// Init joins the job that gorun started and returns the world communicator.
// It reads the launch contract's GORUN_* variables; without them (a program
// run on its own) it returns a world of size 1 that needs no server. It
// returns once every rank of the job is ready to receive, so no message is
// ever sent to a rank that could miss it, or an error wrapping ErrInit that
// names the ranks that did not show up within the timeout (WithTimeout).
//
// Close the world when done. Several worlds can live in one process, each
// as a different rank or job (mpitest runs every rank of a job as
// goroutines), but one rank of a job joins only once: a second Init for a
// rank that this process holds and has not closed returns an error wrapping
// ErrInit (two worlds of one rank would share its inbox, and each would see
// every message). Without the launch contract each Init returns a separate
// world of size 1.
func Init(ctx context.Context, opts ...Option) (*Comm, error) {
	if ctx == nil {
		return nil, nilContext("init")
	}
	o := DefaultOptions()
	if err := o.fromEnvironment(); err != nil {
		return nil, err
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if !o.fromEnv && !o.jobSet { // a singleton: rank 0 of 1, no bus
		o.Rank, o.Size = 0, 1
		e := newEngine(o)
		e.setLimits(1 << 20)
		return &Comm{e: e}, nil
	}
	if err := subject.CheckJob(o.JobID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInit, err)
	}
	mem := o.memory
	if mem != nil && mem.Size() != o.Size {
		return nil, fmt.Errorf("%w: an in-memory network of %d ranks for a job of %d", ErrInit, mem.Size(), o.Size)
	}
	if mem == nil && o.URL == "" && len(o.NATSOptions) == 0 {
		return nil, fmt.Errorf("%w: no NATS server: %s is not set", ErrInit, EnvNATSURL)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	e := newEngine(o)
	if !joined.add(e.joinKey()) {
		return nil, fmt.Errorf("%w: rank %d of job %s is already joined by this process: Close that world before a second Init", ErrInit, o.Rank, o.JobID)
	}
	if mem != nil {
		e.tr = newMemTransport(e, mem)
	} else if o.SharedMemory && o.segment != "" {
		e.tr = newShmTransport(e)
	} else {
		e.tr = newNATSTransport(e)
	}
	if err := e.tr.start(ctx); err != nil {
		e.mu.Lock()
		e.closing = true
		e.mu.Unlock()
		e.markStarted()
		e.tr.close(0)
		joined.remove(e.joinKey())
		return nil, err
	}
	if o.fromEnv {
		startTrace(o.Rank)
		report(contract.ReportInit, 0)
		e.reports = true
	}
	return &Comm{e: e, rank: o.Rank}, nil
}

// joined holds the ranks this process has joined and not closed, by job.
var joined = joinSet{m: map[string]bool{}}

type joinSet struct {
	mu sync.Mutex
	m  map[string]bool
}

// add reports false if k is in the set already.
func (s *joinSet) add(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[k] {
		return false
	}
	s.m[k] = true
	return true
}

func (s *joinSet) remove(k string) {
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

func (e *engine) joinKey() string { return e.job + "/" + strconv.Itoa(e.rank) }

// fromEnvironment fills the job from the launch contract, when present.
func (o *Options) fromEnvironment() error {
	rs, ok := os.LookupEnv(EnvRank)
	if !ok {
		return nil
	}
	bad := func(name, v string) error {
		return fmt.Errorf("%w: %s=%q is not a valid value", ErrInit, name, v)
	}
	rank, err := strconv.Atoi(rs)
	if err != nil {
		return bad(EnvRank, rs)
	}
	ss := os.Getenv(EnvSize)
	size, err := strconv.Atoi(ss)
	if err != nil || size < 1 {
		return bad(EnvSize, ss)
	}
	if rank < 0 || rank >= size {
		return fmt.Errorf("%w: %s=%d is outside [0, %s=%d)", ErrInit, EnvRank, rank, EnvSize, size)
	}
	o.Rank, o.Size = rank, size
	o.JobID = os.Getenv(EnvJobID)
	o.URL = os.Getenv(EnvNATSURL)
	o.Token = os.Getenv(EnvNATSToken)
	o.Creds = os.Getenv(EnvNATSCreds)
	if ca := os.Getenv(EnvNATSCA); ca != "" {
		o.envTLS = append(o.envTLS, nats.RootCAs(ca))
	}
	if cert := os.Getenv(EnvNATSCert); cert != "" {
		o.envTLS = append(o.envTLS, nats.ClientCert(cert, os.Getenv(EnvNATSKey)))
	}
	if seg := os.Getenv(EnvSharedMemory); seg != "" {
		ls := os.Getenv(EnvLocalRank)
		local, err := strconv.Atoi(ls)
		if err != nil || local < 0 {
			return bad(EnvLocalRank, ls)
		}
		o.segment, o.localRank = seg, local
	}
	o.fromEnv, o.ExitOnLoss = true, true
	return nil
}
