package mpi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/subject"
)

// hello is what a rank announces at start-up: the process that single-copy
// offers from it may name (pid 0 and host 0 when it makes none), and the
// eager credit it grants each peer.
type hello struct {
	pid    int
	host   uint64
	credit int64
}

// helloLen is the size of a start-up request: rank, size, pid (4 bytes
// each), host and credit (8 each).
const helloLen = 28

// entryLen is the size of one rank's entry in the start-up answer.
const entryLen = 20

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
	return binary.LittleEndian.AppendUint64(b, uint64(h.credit))
}

// parseEntry decodes and checks one rank's announcement.
func parseEntry(b []byte) (hello, error) {
	h := hello{
		pid:    int(binary.LittleEndian.Uint32(b)),
		host:   binary.LittleEndian.Uint64(b[4:]),
		credit: int64(binary.LittleEndian.Uint64(b[12:])),
	}
	switch {
	case h.credit <= 0 || h.credit > maxCredit:
		return hello{}, fmt.Errorf("field credit: %d is outside [1, %d]", h.credit, int64(maxCredit))
	case (h.pid == 0) != (h.host == 0):
		return hello{}, fmt.Errorf("field pid: pid %d on machine %x: both or neither must be set", h.pid, h.host)
	}
	return h, nil
}

// parseHello decodes and checks the start-up request of rank src (taken
// from its subject) in a job of size ranks.
func parseHello(b []byte, src, size int) (hello, error) {
	if len(b) != helloLen {
		return hello{}, fmt.Errorf("field length: %d bytes, want %d", len(b), helloLen)
	}
	if r := int(binary.LittleEndian.Uint32(b)); r != src {
		return hello{}, fmt.Errorf("field rank: rank %d claims rank %d", src, r)
	}
	if n := int(binary.LittleEndian.Uint32(b[4:])); n != size {
		return hello{}, fmt.Errorf("field size: rank %d thinks the job has %d ranks, rank 0 thinks %d", src, n, size)
	}
	return parseEntry(b[8:])
}

// Start-up answers: ok and the table of every rank's hello, or a failure and
// its reason.
const (
	startOK   byte = 0
	startFail byte = 1
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
	return hello{pid: e.pid, host: e.host, credit: e.credit}
}

// setPeers takes every rank's announcement: the credit each grants this
// rank, and the process its single-copy offers may name.
func (e *engine) setPeers(peers []hello) {
	e.mu.Lock()
	defer e.mu.Unlock()
	copy(e.peerInfo, peers)
	for i := range e.peers {
		e.peers[i].credit = peers[i].credit
	}
	e.markStarted()
}

// markStarted lets frames through to the handlers, once.
func (e *engine) markStarted() {
	e.startOnce.Do(func() { close(e.started) })
}

// handshake returns when every rank's inbox is subscribed, and every rank
// knows what the others announced. Every rank but 0 asks rank 0 on its
// ready subject (retrying while rank 0 has not subscribed yet); rank 0
// answers them all once it has heard from everyone. The server lets only
// rank r publish on rank r's ready subject, and only rank 0 answer.
func (e *engine) handshake(ctx context.Context) error {
	if e.size == 1 {
		e.markStarted()
		return e.nc.FlushWithContext(ctx)
	}
	own := e.own()
	if e.rank != 0 {
		if err := e.nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("%w: rank %d: %v", ErrInit, e.rank, err)
		}
		msg := appendHello(nil, e.rank, e.size, own)
		for {
			reply, err := e.nc.RequestWithContext(ctx, subject.Ready(e.job, e.rank), msg)
			if err == nil {
				peers, err := parseStart(reply.Data, e.rank, e.size, own)
				if err != nil {
					return fmt.Errorf("%w: rank %d: %v", ErrInit, e.rank, err)
				}
				e.setPeers(peers)
				return nil
			}
			if errors.Is(err, nats.ErrNoResponders) {
				// Rank 0 is not listening yet.
				select {
				case <-time.After(2 * time.Millisecond):
					continue
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%w: rank %d: rank 0 did not answer within %v: %v", ErrInit, e.rank, e.opts.Timeout, ctx.Err())
			}
			return fmt.Errorf("%w: rank %d: %v", ErrInit, e.rank, err)
		}
	}
	sub, err := e.nc.SubscribeSync(subject.ReadyAll(e.job))
	if err != nil {
		return fmt.Errorf("%w: rank 0: %v", ErrInit, err)
	}
	defer sub.Unsubscribe()
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%w: rank 0: %v", ErrInit, err)
	}
	g := newGathering(e.job, e.size, own)
	for !g.complete() && g.problem == "" {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			g.timedOut(e.opts.Timeout)
			break
		}
		g.add(m.Subject, m.Reply, m.Data)
	}
	answer := g.answer()
	for _, reply := range g.replyTo() {
		_ = e.nc.Publish(reply, answer)
	}
	_ = e.nc.Flush()
	if g.problem != "" {
		return fmt.Errorf("%w: %s", ErrInit, g.problem)
	}
	e.setPeers(g.peers)
	return nil
}

// gathering is rank 0's side of the start-up handshake: the requests heard
// so far, checked.
type gathering struct {
	job     string
	size    int
	peers   []hello
	replies map[int]string // rank -> where to answer it
	problem string         // why the job cannot start; "" while it can
}

func newGathering(job string, size int, own hello) *gathering {
	g := &gathering{job: job, size: size, peers: make([]hello, size), replies: make(map[int]string, size-1)}
	g.peers[0] = own
	return g
}

func (g *gathering) complete() bool { return len(g.replies) == g.size-1 }

// add takes one start-up request. One that cannot come from a rank of the
// job (a subject naming no rank, a reply subject that is not the rank's) is
// ignored; a rank's request that is wrong is a protocol error that stops
// the job from starting.
func (g *gathering) add(subj, reply string, data []byte) {
	src, ok := subject.Sender(subj, subject.ReadyPrefix(g.job), g.size)
	if !ok || src == 0 || !strings.HasPrefix(reply, subject.ReplyPrefix(g.job, src)+".") {
		return
	}
	h, err := parseHello(data, src, g.size)
	if err != nil {
		g.problem = fmt.Sprintf("%v: the start-up request on %s: %v", ErrProtocol, subj, err)
		return
	}
	g.peers[src] = h
	g.replies[src] = reply
}

func (g *gathering) timedOut(d time.Duration) {
	var missing []string
	for r := 1; r < g.size; r++ {
		if _, ok := g.replies[r]; !ok {
			missing = append(missing, strconv.Itoa(r))
		}
	}
	g.problem = fmt.Sprintf("ranks %s of %d never joined within %v", strings.Join(missing, ", "), g.size, d)
}

// answer is what every rank that asked is told.
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

// replyTo lists where to answer, in rank order.
func (g *gathering) replyTo() []string {
	ranks := make([]int, 0, len(g.replies))
	for r := range g.replies {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	out := make([]string, len(ranks))
	for i, r := range ranks {
		out[i] = g.replies[r]
	}
	return out
}

// credsOption turns a rank's credentials (GORUN_NATS_CREDS) into a nats.go
// option: a user JWT and seed in the .creds format, or a bare nkey seed.
func credsOption(creds string) (nats.Option, error) {
	if strings.Contains(creds, "BEGIN NATS USER JWT") {
		jwt, err := nkeys.ParseDecoratedJWT([]byte(creds))
		if err != nil {
			return nil, fmt.Errorf("no user JWT: %v", err)
		}
		kp, err := nkeys.ParseDecoratedNKey([]byte(creds))
		if err != nil {
			return nil, fmt.Errorf("no user seed: %v", err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, err
		}
		return nats.UserJWTAndSeed(jwt, string(seed)), nil
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(creds)))
	if err != nil {
		return nil, errors.New("neither a user JWT and seed nor an nkey seed")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, kp.Sign), nil
}
