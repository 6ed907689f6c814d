package mpi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorun-hpc/gorun/mpi/internal/subject"
)

// The launch contract's environment variables.
const (
	EnvRank      = "GORUN_RANK"
	EnvSize      = "GORUN_SIZE"
	EnvLocalRank = "GORUN_LOCAL_RANK"
	EnvLocalSize = "GORUN_LOCAL_SIZE"
	EnvJobID     = "GORUN_JOB_ID"
	EnvNATSURL   = "GORUN_NATS_URL"
	EnvNATSToken = "GORUN_NATS_TOKEN"
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
	if o.URL == "" && len(o.NATSOptions) == 0 {
		return nil, fmt.Errorf("%w: no NATS server: %s is not set", ErrInit, EnvNATSURL)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	e := newEngine(o)
	if !joined.add(e.joinKey()) {
		return nil, fmt.Errorf("%w: rank %d of job %s is already joined by this process: Close that world before a second Init", ErrInit, o.Rank, o.JobID)
	}
	if err := e.connect(ctx); err != nil {
		joined.remove(e.joinKey())
		return nil, err
	}
	if err := e.handshake(ctx); err != nil {
		e.mu.Lock()
		e.closing = true
		e.mu.Unlock()
		e.nc.Close()
		joined.remove(e.joinKey())
		return nil, err
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
	o.fromEnv, o.ExitOnLoss = true, true
	return nil
}

func (e *engine) connect(ctx context.Context) error {
	o := e.opts
	timeout := o.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	nopts := []nats.Option{
		nats.Name(fmt.Sprintf("gorun %s rank %d", o.JobID, o.Rank)),
		nats.Timeout(min(timeout, 5*time.Second)),
		nats.NoReconnect(),
		nats.NoEcho(), // multicast frames are for the others
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				err = errors.New("disconnected")
			}
			e.mu.Lock()
			e.lose(err)
			e.mu.Unlock()
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			e.mu.Lock()
			e.lose(errors.New("connection closed"))
			e.mu.Unlock()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// A slow consumer means a dropped message: the job cannot go on.
			e.mu.Lock()
			e.lose(err)
			e.mu.Unlock()
		}),
	}
	if o.Token != "" {
		nopts = append(nopts, nats.Token(o.Token))
	}
	nopts = append(nopts, o.NATSOptions...)
	nopts = append(nopts, nats.NoReconnect())
	nc, err := nats.Connect(o.URL, nopts...)
	if err != nil {
		return fmt.Errorf("%w: rank %d: connect to NATS at %s: %v", ErrInit, o.Rank, o.URL, err)
	}
	e.nc = nc
	e.setLimits(int(nc.MaxPayload()))
	e.inbox = make([]string, e.size)
	for r := range e.inbox {
		e.inbox[r] = subject.Inbox(e.job, r)
	}
	fail := func(err error) error {
		e.closing = true
		nc.Close()
		return fmt.Errorf("%w: rank %d: subscribe: %v", ErrInit, o.Rank, err)
	}
	if e.sub, err = nc.Subscribe(e.inbox[e.rank], e.onMsg); err != nil {
		return fail(err)
	}
	// Flow control bounds what is in flight; the client must never drop.
	if err = e.sub.SetPendingLimits(-1, -1); err != nil {
		return fail(err)
	}
	if e.abortSub, err = nc.Subscribe(subject.Abort(e.job), e.onAbort); err != nil {
		return fail(err)
	}
	if o.Multicast && e.size > 2 {
		e.mcast = subject.Multicast(e.job)
		if e.mcastSub, err = nc.Subscribe(e.mcast, e.onMulticast); err != nil {
			return fail(err)
		}
		if err = e.mcastSub.SetPendingLimits(-1, -1); err != nil {
			return fail(err)
		}
	}
	return nil
}

// Answers of rank 0 to a rank's first ready request (besides an error text).
const (
	readyDone  = ""     // every rank is ready and reachable: Init returns
	readyProbe = "\x01" // probe every rank's reach subject, then ask again
	readyWait  = "\x02" // ask again (another rank of your server probes)
)

// probesAtOnce bounds a prober's requests in flight.
const probesAtOnce = 32

// handshake returns when every rank's inbox is subscribed and every rank's
// server knows it (see doc.go, Start-up). Every rank but 0 asks rank 0 on
// the ready subject (retrying while rank 0 has not subscribed yet); rank 0
// answers them all once it has heard from everyone. On a cluster of
// servers, a second round follows: one rank per server probes every rank's
// reach subject, and rank 0 lets everyone go once every rank has asked
// again, each prober after its probes.
func (e *engine) handshake(ctx context.Context) error {
	if e.size == 1 {
		return e.nc.FlushWithContext(ctx)
	}
	// The reach responder, subscribed after the inbox on one connection:
	// a server that knows it, knows the inbox.
	reach, err := e.nc.Subscribe(subject.Reach(e.job, e.rank), func(m *nats.Msg) { _ = m.Respond(nil) })
	if err != nil {
		return fmt.Errorf("%w: rank %d: %v", ErrInit, e.rank, err)
	}
	defer reach.Unsubscribe()
	if e.rank != 0 {
		return e.readyRank(ctx)
	}
	return e.readyRoot(ctx)
}

// readyMsg is a ready request: rank, size, round, then the id of the
// server the rank is connected to.
func (e *engine) readyMsg(round byte) []byte {
	msg := make([]byte, 9, 9+64)
	binary.LittleEndian.PutUint32(msg, uint32(e.rank))
	binary.LittleEndian.PutUint32(msg[4:], uint32(e.size))
	msg[8] = round
	return append(msg, e.nc.ConnectedServerId()...)
}

// readyRequest sends msg to rank 0's ready subject until rank 0 answers.
func (e *engine) readyRequest(ctx context.Context, msg []byte) (string, error) {
	subj := subject.Ready(e.job)
	for {
		reply, err := e.nc.RequestWithContext(ctx, subj, msg)
		switch {
		case err == nil:
			return string(reply.Data), nil
		case errors.Is(err, nats.ErrNoResponders):
			// Rank 0 is not listening yet (or its server's interest has not
			// reached ours).
			select {
			case <-time.After(2 * time.Millisecond):
				continue
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%w: rank %d: rank 0 did not answer within %v: %v", ErrInit, e.rank, e.opts.Timeout, ctx.Err())
		}
		return "", fmt.Errorf("%w: rank %d: %v", ErrInit, e.rank, err)
	}
}

func (e *engine) readyRank(ctx context.Context) error {
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: rank %d: %v", ErrInit, e.rank, err)
	}
	ans, err := e.readyRequest(ctx, e.readyMsg(1))
	if err != nil {
		return err
	}
	switch ans {
	case readyDone:
		return nil
	case readyProbe:
		if err := e.probeReach(ctx); err != nil {
			return err
		}
	case readyWait:
	default:
		return fmt.Errorf("%w: rank %d: %s", ErrInit, e.rank, ans)
	}
	ans, err = e.readyRequest(ctx, e.readyMsg(2))
	if err != nil {
		return err
	}
	if ans != readyDone {
		return fmt.Errorf("%w: rank %d: %s", ErrInit, e.rank, ans)
	}
	return nil
}

// probeReach requests every other rank's reach subject until each answers: then
// this rank's server knows every rank's inbox.
func (e *engine) probeReach(ctx context.Context) error {
	sem := make(chan struct{}, probesAtOnce)
	errs := make(chan error, e.size)
	for r := range e.size {
		if r == e.rank {
			continue // no echo: a rank does not hear itself
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			subj := subject.Reach(e.job, r)
			for {
				_, err := e.nc.RequestWithContext(ctx, subj, nil)
				if err == nil {
					errs <- nil
					return
				}
				if !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
					errs <- fmt.Errorf("%w: rank %d: rank %d not reachable within %v: %v", ErrInit, e.rank, r, e.opts.Timeout, err)
					return
				}
				select {
				case <-time.After(2 * time.Millisecond):
				case <-ctx.Done():
				}
			}
		}()
	}
	var first error
	for range e.size - 1 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// readyRoot is rank 0's part: it collects every rank's request of a round
// and answers them.
func (e *engine) readyRoot(ctx context.Context) error {
	sub, err := e.nc.SubscribeSync(subject.Ready(e.job))
	if err != nil {
		return fmt.Errorf("%w: rank 0: %v", ErrInit, err)
	}
	defer sub.Unsubscribe()
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: rank 0: %v", ErrInit, err)
	}
	// Round 1: every rank has subscribed.
	replies, servers, problem := e.readyCollect(ctx, sub, 1)
	servers[0] = e.nc.ConnectedServerId()
	prober := map[string]int{} // server -> its lowest rank
	for r := range e.size {
		if id, ok := servers[r]; ok {
			if p, seen := prober[id]; !seen || r < p {
				prober[id] = r
			}
		}
	}
	answer := func(r int) string {
		switch {
		case problem != "":
			return problem
		case len(prober) == 1:
			return readyDone // one server: its interest is known at once
		case prober[servers[r]] == r:
			return readyProbe
		}
		return readyWait
	}
	e.readyAnswer(replies, answer)
	if problem != "" {
		return fmt.Errorf("%w: %s", ErrInit, problem)
	}
	if len(prober) == 1 {
		return nil
	}
	// Round 2: the probers have reached every rank from every server.
	if prober[servers[0]] == 0 {
		if err := e.probeReach(ctx); err != nil {
			problem = err.Error()
		}
	}
	replies, _, p2 := e.readyCollect(ctx, sub, 2)
	if problem == "" {
		problem = p2
	}
	e.readyAnswer(replies, func(int) string { return problem })
	if problem != "" {
		return fmt.Errorf("%w: %s", ErrInit, problem)
	}
	return nil
}

// readyCollect gathers the size-1 ready requests of round: each rank's reply
// subject and server, or what went wrong.
func (e *engine) readyCollect(ctx context.Context, sub *nats.Subscription, round byte) (replies map[int]string, servers map[int]string, problem string) {
	replies = make(map[int]string, e.size-1)
	servers = make(map[int]string, e.size)
	for len(replies) < e.size-1 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			var missing []string
			for r := 1; r < e.size; r++ {
				if _, ok := replies[r]; !ok {
					missing = append(missing, strconv.Itoa(r))
				}
			}
			what := "never joined"
			if round == 2 {
				what = "never became reachable from every server"
			}
			if problem == "" {
				problem = fmt.Sprintf("ranks %s of %d %s within %v", strings.Join(missing, ", "), e.size, what, e.opts.Timeout)
			}
			break
		}
		if len(m.Data) < 9 || m.Data[8] != round {
			continue
		}
		r := int(binary.LittleEndian.Uint32(m.Data))
		size := int(binary.LittleEndian.Uint32(m.Data[4:]))
		if size != e.size && problem == "" {
			problem = fmt.Sprintf("rank %d thinks the job has %d ranks, rank 0 thinks %d", r, size, e.size)
		}
		if r > 0 && r < e.size {
			replies[r] = m.Reply
			servers[r] = string(m.Data[9:])
		}
	}
	return replies, servers, problem
}

// readyAnswer publishes each rank's answer to its request, in rank order.
func (e *engine) readyAnswer(replies map[int]string, answer func(r int) string) {
	ranks := make([]int, 0, len(replies))
	for r := range replies {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	for _, r := range ranks {
		_ = e.nc.Publish(replies[r], []byte(answer(r)))
	}
	_ = e.nc.Flush()
}
