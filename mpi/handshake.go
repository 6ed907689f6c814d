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

	"github.com/gorun-hpc/gorun/internal/subject"
)

// hello is what a rank announces at start-up: the process that single-copy
// offers from it may name (pid 0 and host 0 when it makes none), and the
// eager credit it grants each peer.
type hello struct {
	pid    int
	host   uint64
	credit int64
	shm    shmHello // the shared-memory segment it opened (shmtransport.go)
}

// helloLen is the size of a rank's announcement: rank, size, pid (4 bytes
// each), host and credit (8 each), and its shmHello (shmHelloLen).
const helloLen = 28 + shmHelloLen

// A start-up request is a hello, the round (1 or 2) and the id of the
// server the rank is connected to, of at most maxServerID bytes.
const maxServerID = 128

// entryLen is the size of one rank's entry in the start-up answer.
const entryLen = 20 + shmHelloLen

// maxCredit bounds the eager credit a rank may announce.
const maxCredit = 1 << 40

func appendHello(b []byte, rank, size int, h hello) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(rank))
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	return appendEntry(b, h)
}

func appendEntry(b []byte, h hello) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(h.pid))
	b = binary.LittleEndian.AppendUint64(b, h.host)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.credit))
	return appendShmHello(b, h.shm)
}

// parseEntry decodes and checks one rank's announcement.
func parseEntry(b []byte) (hello, error) {
	h := hello{
		pid:    int(binary.LittleEndian.Uint32(b)),
		host:   binary.LittleEndian.Uint64(b[4:]),
		credit: int64(binary.LittleEndian.Uint64(b[12:])),
		shm:    parseShmHello(b[20:]),
	}
	switch {
	case h.credit <= 0 || h.credit > maxCredit:
		return hello{}, fmt.Errorf("field credit: %d is outside [1, %d]", h.credit, int64(maxCredit))
	case (h.pid == 0) != (h.host == 0):
		return hello{}, fmt.Errorf("field pid: pid %d on machine %x: both or neither must be set", h.pid, h.host)
	case !h.shm.valid():
		return hello{}, fmt.Errorf("field shm: segment %x, local rank %d, pid %d: all or none must be set", h.shm.seg, h.shm.local, h.shm.pid)
	}
	return h, nil
}

// parseRequest decodes and checks the start-up request of rank src (taken
// from its subject) in a job of size ranks: its announcement, the round and
// its server.
func parseRequest(b []byte, src, size int) (h hello, round byte, server string, err error) {
	if len(b) < helloLen+1 || len(b) > helloLen+1+maxServerID {
		return hello{}, 0, "", fmt.Errorf("field length: %d bytes, want %d to %d", len(b), helloLen+1, helloLen+1+maxServerID)
	}
	if r := int(binary.LittleEndian.Uint32(b)); r != src {
		return hello{}, 0, "", fmt.Errorf("field rank: rank %d claims rank %d", src, r)
	}
	if n := int(binary.LittleEndian.Uint32(b[4:])); n != size {
		return hello{}, 0, "", fmt.Errorf("field size: rank %d thinks the job has %d ranks, rank 0 thinks %d", src, n, size)
	}
	if h, err = parseEntry(b[8:]); err != nil {
		return hello{}, 0, "", err
	}
	if round = b[helloLen]; round != 1 && round != 2 {
		return hello{}, 0, "", fmt.Errorf("field round: %d, want 1 or 2", round)
	}
	return h, round, string(b[helloLen+1:]), nil
}

// Start-up answers: ok and the table of every rank's hello, or a failure and
// its reason; on a cluster of servers, round 1 is answered with probe (probe
// every rank, then ask again) or wait (ask again).
const (
	startOK    byte = 0
	startFail  byte = 1
	startProbe byte = 2
	startWait  byte = 3
)

// parseStart decodes and checks rank's start-up answer in a job of size
// ranks, whose own announcement was own.
func parseStart(b []byte, rank, size int, own hello) ([]hello, error) {
	if len(b) > 0 && b[0] == startFail {
		msg := string(b[1:])
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		return nil, errors.New(strings.ToValidUTF8(msg, "?"))
	}
	if len(b) != 1+entryLen*size || b[0] != startOK {
		return nil, fmt.Errorf("%w: the start-up answer: field length: %d bytes, want %d", ErrProtocol, len(b), 1+entryLen*size)
	}
	peers := make([]hello, size)
	for r := range peers {
		h, err := parseEntry(b[1+entryLen*r:])
		if err != nil {
			return nil, fmt.Errorf("%w: the start-up answer: rank %d's entry: %v", ErrProtocol, r, err)
		}
		peers[r] = h
	}
	if peers[rank] != own {
		return nil, fmt.Errorf("%w: the start-up answer: this rank's entry %+v is not what it announced (%+v)", ErrProtocol, peers[rank], own)
	}
	return peers, nil
}

// own is this rank's announcement.
func (e *engine) own() hello {
	return hello{pid: e.pid, host: e.host, credit: e.share, shm: e.shmOwn}
}

// setPeers takes every rank's announcement: the credit each grants this
// rank, and the process its single-copy offers may name, which this rank
// reads only if its launcher vouches for it (vouch). Frames wait until it
// is done.
func (e *engine) setPeers(ctx context.Context, peers []hello) {
	vouched := e.vouch(ctx, peers)
	segs := make(map[uint64]bool, len(peers))
	for _, h := range peers {
		if h.shm.seg != 0 && segs[h.shm.seg] {
			e.sharing.Store(true)
		}
		segs[h.shm.seg] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	copy(e.peerInfo, peers)
	for i := range e.peers {
		e.peers[i].left = peers[i].credit
		if !vouched[i] {
			e.readable[i] = readNo
		}
	}
	e.markStarted()
}

// vouchTimeout bounds how long Init waits for the launcher to name the
// processes it started.
const vouchTimeout = 2 * time.Second

// vouch returns, by world rank, whether this rank may copy single-copy
// offers out of the process that rank announced at start-up. A rank's key
// proves which rank it is, not which process: a rank that announced
// another process's pid would have this one read that process's memory.
// So a process other than this one is read only when the launcher that
// started this rank (gorun, or its host's agent) started it as that rank,
// which it says on the control socket (askPids), once per peer at Init.
// Every rank that mpitest runs in one process announces this process:
// those need no launcher. A peer refused here offers in vain: this rank
// grants chunks instead, and its messages come through the bus.
func (e *engine) vouch(ctx context.Context, peers []hello) []bool {
	ok := make([]bool, len(peers))
	if e.host == 0 {
		return ok // no single copies here
	}
	self := os.Getpid()
	var ask []int
	for r, h := range peers {
		switch {
		case r == e.rank || h.host != e.host || h.pid == 0:
			// never read (canRead refuses another machine's offers)
		case h.pid == self:
			ok[r] = true
		default:
			ask = append(ask, r)
		}
	}
	if len(ask) == 0 {
		return ok
	}
	ctx, cancel := context.WithTimeout(ctx, vouchTimeout)
	defer cancel()
	pidsOf := e.opts.pidsOf
	if pidsOf == nil {
		pidsOf = askPids
	}
	pids, _ := pidsOf(ctx, ask) // no launcher to ask: nobody is vouched for
	for _, r := range ask {
		ok[r] = pids[r] == peers[r].pid
	}
	return ok
}

// markStarted lets frames through to the handlers, once.
func (e *engine) markStarted() {
	e.startOnce.Do(func() { close(e.started) })
}

// handshake returns when every rank's inbox is subscribed and known to
// every rank's server, and every rank knows what the others announced (see
// protocol.go, Start-up). Every rank but 0 asks rank 0 on its ready subject
// (retrying while rank 0 has not subscribed yet); rank 0 answers them all
// once it has heard from everyone. On a cluster of servers a second round
// follows: one rank per server probes every rank, and rank 0 lets everyone
// go once every rank has asked again, each prober after its probes. The
// server lets only rank r publish on rank r's subjects, and only rank 0
// answer.
func (t *natsTransport) handshake(ctx context.Context) error {
	if t.size == 1 {
		t.e.markStarted()
		return t.nc.FlushWithContext(ctx)
	}
	// The probe responder, subscribed after the inbox on one connection: a
	// server that knows it, knows the inbox.
	reach, err := t.nc.Subscribe(subject.ReachAll(t.job, t.rank), func(m *nats.Msg) {
		if src, ok := subject.Sender(m.Subject, subject.ReachPrefix(t.job, t.rank), t.size); ok && src != t.rank {
			_ = t.nc.Publish(subject.Reached(t.job, src, t.rank), nil)
		}
	})
	if err != nil {
		return fmt.Errorf("%w: rank %d: %v", ErrInit, t.rank, err)
	}
	defer reach.Unsubscribe()
	// The answers to this rank's probes, should it be its server's prober:
	// subscribed now, so that their interest has reached every server by
	// the time it probes. Subscribed only once a rank was told to probe,
	// each probe's answer was dropped until then and the probes were sent
	// again, every prober to every rank: on 64 hosts, the probes took 2.4-3.9
	// s of Init on 2 cores.
	p, err := t.newProbes()
	if err != nil {
		return err
	}
	defer p.sub.Unsubscribe()
	if t.rank != 0 {
		return t.readyRank(ctx, p)
	}
	return t.readyRoot(ctx, p)
}

// askAgainMax bounds how long a rank waits before it asks rank 0 again,
// when rank 0 is not listening yet: from 2 ms, doubling. At a fixed 2 ms,
// 64 ranks waiting for rank 0 send 32,000 requests a second, each
// answered by its server, on the cores rank 0 needs to start.
const askAgainMax = 20 * time.Millisecond

// request sends this rank's start-up request of round to rank 0 until rank
// 0 answers, and returns the answer.
func (t *natsTransport) request(ctx context.Context, round byte) ([]byte, error) {
	msg := appendHello(make([]byte, 0, helloLen+1+maxServerID), t.rank, t.size, t.e.own())
	msg = append(msg, round)
	if id := t.nc.ConnectedServerId(); len(id) <= maxServerID {
		msg = append(msg, id...)
	}
	for delay := 2 * time.Millisecond; ; delay = min(2*delay, askAgainMax) {
		reply, err := t.nc.RequestWithContext(ctx, subject.Ready(t.job, t.rank), msg)
		if err == nil {
			return reply.Data, nil
		}
		if errors.Is(err, nats.ErrNoResponders) {
			// Rank 0 is not listening yet (or its server's interest has
			// not reached ours).
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: rank %d: rank 0 did not answer within %v: %v", ErrInit, t.rank, t.e.opts.Timeout, ctx.Err())
		}
		return nil, fmt.Errorf("%w: rank %d: %v", ErrInit, t.rank, err)
	}
}

// readyRank is the part of every rank but 0.
func (t *natsTransport) readyRank(ctx context.Context, p *probes) error {
	if err := t.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: rank %d: %v", ErrInit, t.rank, err)
	}
	ans, err := t.request(ctx, 1)
	if err != nil {
		return err
	}
	if len(ans) == 1 && (ans[0] == startProbe || ans[0] == startWait) {
		if ans[0] == startProbe {
			if err := t.probeReach(ctx, p); err != nil {
				return err
			}
		}
		if ans, err = t.request(ctx, 2); err != nil {
			return err
		}
	}
	peers, err := parseStart(ans, t.rank, t.size, t.e.own())
	if err != nil {
		return fmt.Errorf("%w: rank %d: %v", ErrInit, t.rank, err)
	}
	t.e.setPeers(ctx, peers)
	return nil
}

// probes are the answers to this rank's probes (probeReach): the ranks
// that answered, each once, and those its server said it knows no
// subscriber of (nacked), to be probed again.
type probes struct {
	sub     *nats.Subscription
	mu      sync.Mutex
	reached []bool
	nacked  []bool
	left    int
	done    chan struct{} // closed once every other rank has answered
	nack    chan struct{} // a probe came back unheard (cap 1)
	nacks   int           // how many came back so
	quiet   time.Duration // how long an unanswered probe waits to go again: quietFirst
}

// newProbes subscribes to the answers to this rank's probes.
func (t *natsTransport) newProbes() (*probes, error) {
	p := &probes{reached: make([]bool, t.size), nacked: make([]bool, t.size), left: t.size - 1,
		done: make(chan struct{}), nack: make(chan struct{}, 1), quiet: quietFirst}
	p.reached[t.rank] = true // no echo: a rank does not hear itself (a job of one has no handshake)
	sub, err := t.nc.Subscribe(subject.ReachedAll(t.job, t.rank), func(m *nats.Msg) {
		r, ok := subject.Sender(m.Subject, subject.ReachedPrefix(t.job, t.rank), t.size)
		if !ok {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case p.reached[r]:
		case len(m.Data) == 0 && m.Header.Get("Status") == noResponders:
			// The server's word that it knows no subscriber of rank r's
			// probes (yet): the probe went nowhere.
			p.nacked[r] = true
			p.nacks++
			select {
			case p.nack <- struct{}{}:
			default:
			}
		default:
			p.reached[r] = true
			if p.left--; p.left == 0 {
				close(p.done)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: rank %d: %v", ErrInit, t.rank, err)
	}
	p.sub = sub
	return p, nil
}

// noResponders is the status of the message a NATS server sends back for
// a message with a reply subject that it delivered to no one.
const noResponders = "503"

// Probe timing (probeReach): a probe that the server delivered to no one
// is sent again nackFirst later, then at twice the last wait, up to
// nackMax; one that went out but is not answered (the rank is slow to
// answer, or its answer was dropped on the way: it reached a server
// before the prober's interest did, where the servers are not one full
// mesh) is sent again quietFirst later (probes.quiet), then at twice the
// last, up to quietMax.
const (
	nackFirst  = 2 * time.Millisecond
	nackMax    = 50 * time.Millisecond
	quietFirst = time.Second
	quietMax   = 4 * time.Second
)

// probeReach probes every other rank until each answers (p): then this
// rank's server knows every rank's probe subscription, and so its inbox.
// Each probe carries the prober's answer subject as its reply subject: a
// server that knows no subscriber of it sends it back at once, with the
// status 503 (NATS's no-responders), and it is sent again a little later;
// one not answered is sent again only after quietFirst. Probes
// sent again blindly, every 2 ms at first, to every rank that had not
// answered made a storm on 64 hosts on 2 cores: answers were slow to come
// under the load (a rank whose process got no core for a second answered
// every prober that late), and each prober sent 500-1,100 probes for its
// 63; now 63 to 90 (the probes took 1.5-3.4 s of Init, now 0.5-1.4 s).
func (t *natsTransport) probeReach(ctx context.Context, p *probes) error {
	mu, reached, nacked := &p.mu, p.reached, p.nacked
	probe := func(all bool) {
		mu.Lock()
		defer mu.Unlock()
		for r, ok := range reached {
			if !ok && (all || nacked[r]) {
				nacked[r] = false
				_ = t.nc.PublishMsg(&nats.Msg{Subject: subject.Reach(t.job, r, t.rank), Reply: subject.Reached(t.job, t.rank, r)})
			}
		}
	}
	probe(true)
	nackWait, quietWait := nackFirst, p.quiet
	quiet := time.NewTimer(quietWait)
	defer quiet.Stop()
	for {
		select {
		case <-p.done:
			return nil
		case <-p.nack:
			select {
			case <-time.After(nackWait):
			case <-p.done: // the rest answered meanwhile
				return nil
			case <-ctx.Done():
				continue
			}
			nackWait = min(2*nackWait, nackMax)
			probe(false)
		case <-quiet.C:
			quietWait = min(2*quietWait, quietMax)
			quiet.Reset(quietWait)
			probe(true)
		case <-ctx.Done():
			mu.Lock()
			var missing []string
			for r, ok := range reached {
				if !ok {
					missing = append(missing, strconv.Itoa(r))
				}
			}
			mu.Unlock()
			return fmt.Errorf("%w: rank %d: ranks %s not reachable within %v", ErrInit, t.rank, strings.Join(missing, ", "), t.e.opts.Timeout)
		}
	}
}

// readyRoot is rank 0's part: it collects every rank's request of a round
// and answers them.
func (t *natsTransport) readyRoot(ctx context.Context, p *probes) error {
	sub, err := t.nc.SubscribeSync(subject.ReadyAll(t.job))
	if err != nil {
		return fmt.Errorf("%w: rank 0: %v", ErrInit, err)
	}
	defer sub.Unsubscribe()
	if err := t.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: rank 0: %v", ErrInit, err)
	}
	g := newGathering(t.job, t.size, t.e.own(), t.nc.ConnectedServerId())
	collect := func() {
		for !g.complete() && g.problem == "" {
			m, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				g.timedOut(t.e.opts.Timeout)
				break
			}
			g.add(m.Subject, m.Reply, m.Data)
		}
	}
	answer := func(what func(r int) []byte) {
		for _, r := range g.ranks() {
			_ = t.nc.Publish(g.replies[r], what(r))
		}
		_ = t.nc.Flush()
	}
	collect() // round 1: every rank has subscribed
	probers := g.probers()
	if g.problem == "" && len(probers) > 1 {
		answer(func(r int) []byte {
			if probers[g.servers[r]] == r {
				return []byte{startProbe}
			}
			return []byte{startWait}
		})
		// Round 2: the probers have reached every rank from every server.
		var probeErr error
		if probers[g.servers[0]] == 0 {
			probeErr = t.probeReach(ctx, p)
		}
		g.next()
		collect()
		if probeErr != nil && g.problem == "" {
			g.problem = probeErr.Error()
		}
	}
	final := g.answer()
	answer(func(int) []byte { return final })
	if g.problem != "" {
		return fmt.Errorf("%w: %s", ErrInit, g.problem)
	}
	t.e.setPeers(ctx, g.peers)
	return nil
}

// gathering is rank 0's side of the start-up handshake: the requests heard
// so far in this round, checked.
type gathering struct {
	job     string
	size    int
	round   byte
	peers   []hello
	servers []string       // rank -> the id of its server (round 1)
	replies map[int]string // rank -> where to answer it this round
	problem string         // why the job cannot start; "" while it can
}

func newGathering(job string, size int, own hello, server string) *gathering {
	g := &gathering{job: job, size: size, round: 1, peers: make([]hello, size), servers: make([]string, size), replies: make(map[int]string, size-1)}
	g.peers[0], g.servers[0] = own, server
	return g
}

func (g *gathering) complete() bool { return len(g.replies) == g.size-1 }

// next starts round 2.
func (g *gathering) next() {
	g.round = 2
	clear(g.replies)
}

// add takes one start-up request. One that cannot come from a rank of the
// job (a subject naming no rank, a reply subject that is not the rank's) is
// ignored, as is one of another round; a rank's request that is wrong is a
// protocol error that stops the job from starting.
func (g *gathering) add(subj, reply string, data []byte) {
	src, ok := subject.Sender(subj, subject.ReadyPrefix(g.job), g.size)
	if !ok || src == 0 || !strings.HasPrefix(reply, subject.ReplyPrefix(g.job, src)+".") {
		return
	}
	h, round, server, err := parseRequest(data, src, g.size)
	switch {
	case err != nil:
	case round != g.round:
		return
	case round == 2 && h != g.peers[src]:
		err = fmt.Errorf("field pid: round 2 announces %+v, round 1 %+v", h, g.peers[src])
	}
	if err != nil {
		g.problem = fmt.Sprintf("%v: the start-up request on %s: %v", ErrProtocol, subj, err)
		return
	}
	if round == 1 {
		g.peers[src], g.servers[src] = h, server
	}
	g.replies[src] = reply
}

// probers names one prober per server: the lowest rank connected to it.
func (g *gathering) probers() map[string]int {
	p := map[string]int{}
	for r := g.size - 1; r >= 0; r-- {
		p[g.servers[r]] = r
	}
	return p
}

func (g *gathering) timedOut(d time.Duration) {
	var missing []string
	for r := 1; r < g.size; r++ {
		if _, ok := g.replies[r]; !ok {
			missing = append(missing, strconv.Itoa(r))
		}
	}
	what := "never joined"
	if g.round == 2 {
		what = "never became reachable from every server"
	}
	g.problem = fmt.Sprintf("ranks %s of %d %s within %v", strings.Join(missing, ", "), g.size, what, d)
}

// answer is what every rank that asked is told at the end.
func (g *gathering) answer() []byte {
	if g.problem != "" {
		return append([]byte{startFail}, g.problem...)
	}
	b := make([]byte, 1, 1+entryLen*g.size)
	b[0] = startOK
	for _, h := range g.peers {
		b = appendEntry(b, h)
	}
	return b
}

// ranks lists the ranks to answer this round, in rank order.
func (g *gathering) ranks() []int {
	ranks := make([]int, 0, len(g.replies))
	for r := range g.replies {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	return ranks
}
