package mpi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorun-hpc/gorun/internal/natsauth"
	"github.com/gorun-hpc/gorun/internal/subject"
)

// natsTransport carries a rank's frames over one NATS connection: its
// subjects (internal/subject), the binary header or reply-subject token in
// front of each frame (wire.go), the start-up handshake (handshake.go) and
// the connection's events all live here; see protocol.go for the wire
// format.
type natsTransport struct {
	e          *engine
	rank, size int
	job        string
	nc         *nats.Conn
	sub        *nats.Subscription
	abortSub   *nats.Subscription
	mcastSub   *nats.Subscription
	inbox      []string // subject of this rank's frames to every world rank
	mcast      string   // this rank's multicast subject; "" when off
	inboxPfx   string   // what the subjects of this rank's inbox start with; the sender follows
	mcastPfx   string   // what every multicast subject starts with
	abortPfx   string   // what every abort subject starts with
	diedPfx    string   // what every Died subject starts with
	diedSub    *nats.Subscription
	bufPool    sync.Pool
}

func newNATSTransport(e *engine) *natsTransport {
	return &natsTransport{e: e, rank: e.rank, size: e.size, job: e.job}
}

func (t *natsTransport) multicast() bool { return t.mcast != "" }

func (t *natsTransport) start(ctx context.Context) error {
	if err := t.connect(ctx); err != nil {
		return err
	}
	return t.handshake(ctx)
}

func (t *natsTransport) connect(ctx context.Context) error {
	e := t.e
	o := e.opts
	timeout := o.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	lose := func(err error) {
		e.mu.Lock()
		e.lose(err)
		e.mu.Unlock()
	}
	nopts := []nats.Option{
		nats.Name(fmt.Sprintf("gorun %s rank %d", o.JobID, o.Rank)),
		// The whole connection, authentication included: a rank whose
		// process gets no core for a while (an oversubscribed host) still
		// connects within Init's bound.
		nats.Timeout(timeout),
		nats.NoReconnect(),
		nats.NoEcho(), // multicast frames are for the others
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				err = errors.New("disconnected")
			}
			lose(err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { lose(errors.New("connection closed")) }),
		// A slow consumer means a dropped message: the job cannot go on.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { lose(err) }),
	}
	if o.Token != "" {
		nopts = append(nopts, nats.Token(o.Token))
	}
	if o.Creds != "" {
		opt, err := natsauth.Option(o.Creds)
		if err != nil {
			return fmt.Errorf("%w: rank %d: %s: %v", ErrInit, o.Rank, EnvNATSCreds, err)
		}
		nopts = append(nopts, opt)
	}
	nopts = append(nopts, o.envTLS...)
	// Request replies (the start-up answer) come on subjects of this rank's
	// own, which the server lets only this rank read.
	nopts = append(nopts, nats.CustomInboxPrefix(subject.ReplyPrefix(o.JobID, o.Rank)))
	nopts = append(nopts, o.NATSOptions...)
	nopts = append(nopts, nats.NoReconnect())
	nc, err := nats.Connect(o.URL, nopts...)
	if err != nil {
		return fmt.Errorf("%w: rank %d: connect to NATS at %s: %v", ErrInit, o.Rank, o.URL, err)
	}
	t.nc = nc
	e.setLimits(int(nc.MaxPayload()))
	limit := e.opts.EagerLimit
	t.bufPool.New = func() any { b := make([]byte, hdrLen+limit); return &b }
	t.inbox = make([]string, t.size)
	for r := range t.inbox {
		t.inbox[r] = subject.Inbox(t.job, r, t.rank)
	}
	t.inboxPfx = subject.InboxPrefix(t.job, t.rank)
	t.mcastPfx = subject.MulticastPrefix(t.job)
	t.abortPfx = subject.AbortPrefix(t.job)
	fail := func(err error) error {
		return fmt.Errorf("%w: rank %d: subscribe: %v", ErrInit, o.Rank, err)
	}
	if t.sub, err = nc.Subscribe(subject.InboxAll(t.job, t.rank), t.onMsg); err != nil {
		return fail(err)
	}
	// Flow control bounds what is in flight; the client must never drop.
	if err = t.sub.SetPendingLimits(-1, -1); err != nil {
		return fail(err)
	}
	if t.abortSub, err = nc.Subscribe(subject.AbortAll(t.job), t.onAbort); err != nil {
		return fail(err)
	}
	t.diedPfx = subject.DiedPrefix(t.job)
	if t.diedSub, err = nc.Subscribe(subject.DiedAll(t.job), t.onDied); err != nil {
		return fail(err)
	}
	if o.Multicast && t.size > 2 {
		t.mcast = subject.Multicast(t.job, t.rank)
		if t.mcastSub, err = nc.Subscribe(subject.MulticastAll(t.job), t.onMulticast); err != nil {
			return fail(err)
		}
		if err = t.mcastSub.SetPendingLimits(-1, -1); err != nil {
			return fail(err)
		}
	}
	return nil
}

// send publishes a frame: with its binary header in front of a copy of
// data, or, for a chunk and for an eager message from bigEager bytes on,
// with its header in a reply-subject token and no copy.
func (t *natsTransport) send(dst int, h header, data []byte) error {
	subj := t.mcast
	if dst != toAll {
		subj = t.inbox[dst]
	}
	t.e.paths.busFrames.Add(1)
	t.e.paths.busBytes.Add(int64(hdrLen + len(data)))
	switch {
	case h.kind == kChunk:
		return t.nc.PublishRequest(subj, makeToken(tokChunk, h.src, h.id, int(h.n)), data)
	case h.kind == kEager && len(data) >= bigEager:
		return t.nc.PublishRequest(subj, makeToken(tokEager, h.src, h.comm, h.tag), data)
	}
	bp := t.bufPool.Get().(*[]byte)
	b := *bp
	n := hdrLen + len(data)
	if n > cap(b) {
		b = make([]byte, n)
	}
	b = b[:n]
	putHeader(b, h)
	copy(b[hdrLen:], data)
	err := t.nc.Publish(subj, b)
	t.bufPool.Put(bp)
	return err
}

func (t *natsTransport) abort(code int, d time.Duration) {
	_ = t.nc.Publish(subject.Abort(t.job, t.rank), abortPayload(t.rank, code))
	_ = t.nc.FlushTimeout(d)
}

func (t *natsTransport) close(d time.Duration) {
	if t.nc == nil { // it never connected
		return
	}
	// The flush (a round trip to the server) makes sure the server has
	// every frame this rank published before the connection closes. A
	// rank that published none since the start-up, whose own publishes the
	// handshake's replies confirmed, has nothing to flush: its frames went
	// through the rings, and the round trip would cost its Close the
	// server's attention (milliseconds while other ranks still start).
	if d > 0 && t.e.paths.busFrames.Load() > 0 {
		_ = t.nc.FlushTimeout(d)
	}
	t.nc.Close()
}

// onMsg is the inbox subscription's handler: every frame for this rank
// passes here, in the order the server delivers them. The sender is the
// last token of the subject, which the server lets only that rank publish
// on (see subject.Permissions); a frame whose subject names no rank of the
// job cannot come from a job member, and is dropped and counted.
func (t *natsTransport) onMsg(m *nats.Msg) {
	src, ok := subject.Sender(m.Subject, t.inboxPfx, t.size)
	if !ok {
		t.e.drops.Add(1)
		return
	}
	t.decode(m, src, false)
}

// onMulticast handles a frame on the job's multicast subjects: the same
// frames as on an inbox, from a rank that sent them to every other.
func (t *natsTransport) onMulticast(m *nats.Msg) {
	src, ok := subject.Sender(m.Subject, t.mcastPfx, t.size)
	if !ok || src == t.rank { // the connection has no echo: never our own
		t.e.drops.Add(1)
		return
	}
	t.decode(m, src, true)
}

// decode reads a frame's header, from its token or its first hdrLen bytes,
// and hands the frame to the engine; a frame whose header cannot be read
// is a protocol error.
func (t *natsTransport) decode(m *nats.Msg, src int, mc bool) {
	if m.Reply != "" {
		kind, tsrc, a, b, ok := parseToken(m.Reply)
		switch {
		case !ok:
			t.e.reject(m.Subject, "reply token", "%.40q is not a frame header", m.Reply)
		case kind == tokEager:
			t.e.onFrame(m.Subject, src, mc, header{kind: kEager, src: tsrc, comm: a, tag: b}, m.Data)
		case kind == tokChunk:
			t.e.onFrame(m.Subject, src, mc, header{kind: kChunk, src: tsrc, id: a, n: uint64(b)}, m.Data)
		default:
			t.e.reject(m.Subject, "reply token", "unknown kind %q", kind)
		}
		return
	}
	h, err := parseHeader(m.Data)
	switch {
	case err != nil:
		t.e.reject(m.Subject, "length", "%d bytes, shorter than the %d-byte header", len(m.Data), hdrLen)
	case h.kind == kChunk: // only ever in a token
		t.e.reject(m.Subject, "kind", "unknown frame kind %d", h.kind)
	case h.kind != kEager && h.kind != kRTS && len(m.Data) != hdrLen:
		t.e.reject(m.Subject, "length", "a kind %d frame of %d bytes, want %d", h.kind, len(m.Data), hdrLen)
	default:
		t.e.onFrame(m.Subject, src, mc, h, m.Data[hdrLen:])
	}
}

// onDied takes gorun's word that a rank died (published with that rank's
// credentials, so the server vouches for it): what waits for it fails.
func (t *natsTransport) onDied(m *nats.Msg) {
	src, ok := subject.Sender(m.Subject, t.diedPfx, t.size)
	if !ok || src == t.rank {
		t.e.drops.Add(1)
		return
	}
	go func() { // after the start: not on the client's goroutine
		<-t.e.started
		t.e.peerDied(src)
	}()
}

// onAbort hands another rank's Abort to the engine.
func (t *natsTransport) onAbort(m *nats.Msg) {
	src, ok := subject.Sender(m.Subject, t.abortPfx, t.size)
	if !ok || src == t.rank {
		t.e.drops.Add(1)
		return
	}
	t.e.onAbort(m.Subject, src, m.Data)
}
