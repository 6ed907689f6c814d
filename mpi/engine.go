package mpi

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/subject"
)

// engine is one rank's end of the job: its connection, its inbox, and the
// matching, flow-control and rendezvous state shared by every communicator
// of the rank. One mutex guards it all; frames are published while it is
// held, which keeps every pair's frames in the order the protocol decided
// them (see protocol.go).
type engine struct {
	opts       Options
	rank, size int
	job        string
	nc         *nats.Conn // nil for a singleton
	reports    bool       // this is the world gorun started: report Init, Close and Abort (control.go)
	sub        *nats.Subscription
	abortSub   *nats.Subscription
	inbox      []string // subject of this rank's frames to every world rank
	mcast      string   // this rank's multicast subject; "" when off
	mcastSub   *nats.Subscription
	inboxPfx   string        // what the subjects of this rank's inbox start with; the sender follows
	mcastPfx   string        // what every multicast subject starts with
	abortPfx   string        // what every abort subject starts with
	peerInfo   []hello       // what each rank announced at start-up (pid, host, the credit it grants)
	drops      atomic.Int64  // frames dropped because no job member can have sent them
	mcSent     atomic.Uint64 // multicast frames this rank published, for its bye
	started    chan struct{} // closed once peerInfo is known (or Init failed): frames wait for it
	startOnce  sync.Once
	chunk      int                                          // payload bytes of one rendezvous chunk
	pid        int                                          // this process, for single-copy offers
	host       uint64                                       // hostIdentity, or 0 when single-copy transfers are off
	read       func(pid int, addr uint64, buf []byte) error // readRemote, or a test's
	grantStep  int                                          // bytes granted by one CTS
	credit     int64                                        // eager credit of each peer towards this rank
	bufPool    sync.Pool

	mu       sync.Mutex
	err      error // sticky: once set, every operation fails with it
	closing  bool
	queues   map[uint64]*matchQueue
	peers    []peer
	mcQueue  []*Request          // multicast sends waiting for credit at some peer, in order
	sends    map[uint64]*Request // rendezvous sends, by message id
	recvs    map[xferKey]*Request
	grantQ   []*Request // rendezvous receives still to be granted, in order
	readable []uint8    // per world rank: can this rank copy out of its memory (readUnknown, readOK, readNo)
	window   int64      // rendezvous bytes this rank may still grant
	nextID   uint64
	arrived  chan struct{} // closed and replaced whenever a message becomes unexpected
	inflight int           // sends not yet complete
	idle     chan struct{} // closed when inflight falls to zero, for Close
	stats    flowStats
	traffic  blocked.Stats // messages and bytes, for gorun --stats (Ops unused)
}

// flowStats count what the flow control did, for tests that check that it
// works (export_test.go).
type flowStats struct {
	creditWaits int64 // sends that waited for eager credit
	peakHeld    int64 // most unreceived eager bytes (frameCost each included) from one peer at once
	peakWindow  int64 // most rendezvous bytes granted and not yet received at once
}

// peer is this rank's state towards one other rank.
type peer struct {
	credit   int64      // eager bytes this rank may still send to the peer
	queue    []*Request // sends to the peer waiting for credit, in order
	consumed int64      // eager bytes from the peer received but not yet credited back
	held     int64      // eager bytes from the peer received and not yet credited back (consumed or not)
	waiting  int64      // eager bytes from the peer waiting, unexpected, for a receive
	mcSeen   uint64     // multicast frames from the peer handled so far
	bye      bool       // the peer said it closed its world...
	byeAfter uint64     // ...after this many multicast frames
	gone     bool       // ...and they have all been handled: it will never send again
}

type xferKey struct {
	src int
	id  uint64
}

// matchQueue holds one communicator's receives that wait for a message and
// messages that wait for a receive, both in arrival order.
type matchQueue struct {
	posted     []*Request
	unexpected []*envelope
}

// envelope is a message that arrived before a matching receive.
type envelope struct {
	src, tag int // world rank
	data     []byte
	rts      bool // only announced: size bytes wait at the sender under id
	id       uint64
	size     int
	offer    offer // rts: where the sender offers the bytes for a single copy
}

func (v *envelope) count() int {
	if v.rts {
		return v.size
	}
	return len(v.data)
}

func (v *envelope) cost() int64 {
	if v.rts {
		return frameCost
	}
	return int64(len(v.data)) + frameCost
}

// maxMessage bounds the size an RTS may announce: 256 TiB, more than any
// slice a Go process can hold. A larger size is a protocol error.
const maxMessage = 1 << 48

// bigAlloc is the largest buffer a chunked receive allocates at once, on the
// size its RTS announced; the buffer of a larger message grows with the
// bytes that really arrive, so that a forged size cannot make a rank
// allocate what no sender sends.
const bigAlloc = 256 << 20

func newEngine(o Options) *engine {
	e := &engine{
		opts:     o,
		rank:     o.Rank,
		size:     o.Size,
		job:      o.JobID,
		queues:   make(map[uint64]*matchQueue),
		peers:    make([]peer, o.Size),
		sends:    make(map[uint64]*Request),
		recvs:    make(map[xferKey]*Request),
		arrived:  make(chan struct{}),
		started:  make(chan struct{}),
		readable: make([]uint8, o.Size),
		read:     readRemote,
	}
	if o.readHook != nil {
		e.read = o.readHook
	}
	if o.SingleCopy {
		e.host, e.pid = hostIdentity(), os.Getpid()
	}
	limit := o.EagerLimit
	e.bufPool.New = func() any { b := make([]byte, hdrLen+limit); return &b }
	return e
}

// setLimits derives the flow-control figures from the server's payload
// limit and the job size.
func (e *engine) setLimits(maxPayload int) {
	if e.opts.EagerLimit > maxPayload-hdrLen {
		e.opts.EagerLimit = maxPayload - hdrLen
	}
	e.chunk = maxPayload
	e.grantStep = 2 * e.chunk
	if e.opts.RendezvousWindow < e.grantStep {
		e.opts.RendezvousWindow = e.grantStep
	}
	e.window = int64(e.opts.RendezvousWindow)
	min := 2 * int64(e.opts.EagerLimit+frameCost)
	e.credit = min
	if e.size > 1 {
		e.credit = max(int64(e.opts.EagerBudget)/int64(e.size-1), min)
	}
	for i := range e.peers {
		e.peers[i].credit = e.credit
	}
	e.peerInfo = make([]hello, e.size)
	for i := range e.peerInfo {
		e.peerInfo[i] = hello{credit: e.credit}
	}
	limit := e.opts.EagerLimit
	e.bufPool.New = func() any { b := make([]byte, hdrLen+limit); return &b }
}

func (e *engine) queue(comm uint64) *matchQueue {
	q := e.queues[comm]
	if q == nil {
		q = &matchQueue{}
		e.queues[comm] = q
	}
	return q
}

// ---- sending ----

// publish sends one frame to a world rank. Called with e.mu held.
func (e *engine) publish(dst int, h header, data []byte) {
	e.publishOn(e.inbox[dst], h, data)
}

// publishOn sends one frame on a subject: a rank's inbox, or the job's
// multicast subject.
func (e *engine) publishOn(subj string, h header, data []byte) {
	bp := e.bufPool.Get().(*[]byte)
	b := *bp
	n := hdrLen + len(data)
	if n > cap(b) {
		b = make([]byte, n)
	}
	b = b[:n]
	putHeader(b, h)
	copy(b[hdrLen:], data)
	e.countMulticast(subj)
	err := e.nc.Publish(subj, b)
	e.bufPool.Put(bp)
	if err != nil {
		e.lose(err)
	}
}

func (e *engine) sendCost(r *Request) int64 {
	if r.rdv {
		return frameCost
	}
	return int64(len(r.data)) + frameCost
}

// startSend begins a send; r is new and fully set up. Called with e.mu held.
func (e *engine) startSend(r *Request) {
	if e.err != nil {
		e.finish(r, e.err)
		return
	}
	e.inflight++
	r.counted = true
	if r.peer == e.rank { // to self: a local copy, never the bus
		traceSent(r.c, r.peer, r.comm, r.tag)
		data := append([]byte(nil), r.data...)
		e.arrive(r.comm, e.rank, r.tag, data, nil)
		e.finish(r, nil)
		return
	}
	if e.peers[r.peer].gone {
		e.finish(r, peerLost(r, r.peer))
		return
	}
	traceSent(r.c, r.peer, r.comm, r.tag)
	if len(r.data) > e.opts.EagerLimit {
		r.rdv = true
		e.nextID++
		r.id = e.nextID
	}
	p := &e.peers[r.peer]
	if len(p.queue) == 0 && p.credit >= e.sendCost(r) {
		e.transmit(r)
		return
	}
	r.queued = true
	e.stats.creditWaits++
	p.queue = append(p.queue, r)
}

// sendNow is the blocking Send's fast path: a small message to another rank
// with credit to spare and nothing queued before it goes out at once,
// without a Request. It reports whether it sent; when not, the caller takes
// the general path, which also reports any error.
func (e *engine) sendNow(c *Comm, comm uint64, dst, tag int, data []byte) bool {
	if len(data) > e.opts.EagerLimit || dst < 0 || dst >= c.Size() || tag < 0 || tag > MaxTag || c.closed.Load() {
		return false
	}
	w := c.worldRank(dst)
	e.mu.Lock()
	defer e.mu.Unlock()
	p := &e.peers[w]
	cost := int64(len(data)) + frameCost
	if e.err != nil || w == e.rank || len(p.queue) > 0 || p.credit < cost || p.gone {
		return false
	}
	p.credit -= cost
	e.publishEager(e.inbox[w], comm, tag, data)
	e.countSent(1, len(data))
	traceSent(c, w, comm, tag)
	return e.err == nil
}

// startSendAll sends r to every other rank of the world with one publish on
// the multicast subject, which the server fans out. It needs eager credit at
// every peer; without it, r waits in the multicast queue (in order, behind
// any multicast already waiting). Called with e.mu held; it reports false,
// having done nothing, when multicast is off.
func (e *engine) startSendAll(r *Request) bool {
	if e.mcast == "" {
		return false
	}
	if e.err != nil {
		e.finish(r, e.err)
		return true
	}
	r.mcast = true
	r.rdv = len(r.data) > e.opts.EagerLimit
	e.inflight++
	r.counted = true
	for w := range e.peers {
		if e.peers[w].gone {
			e.finish(r, peerLost(r, w))
			return true
		}
	}
	for w := range e.size {
		if w != e.rank {
			traceSent(r.c, w, r.comm, r.tag)
		}
	}
	if len(e.mcQueue) > 0 || !e.mcastCredit(e.sendCost(r)) {
		r.queued = true
		e.stats.creditWaits++
		e.mcQueue = append(e.mcQueue, r)
		return true
	}
	e.transmitAll(r)
	return true
}

// mcastCredit reports whether every peer has n bytes of eager credit.
func (e *engine) mcastCredit(n int64) bool {
	for p := range e.peers {
		if p != e.rank && e.peers[p].credit < n {
			return false
		}
	}
	return true
}

// transmitAll puts a multicast send on the wire; every peer has credit.
func (e *engine) transmitAll(r *Request) {
	cost := e.sendCost(r)
	for p := range e.peers {
		if p != e.rank {
			e.peers[p].credit -= cost
		}
	}
	if !r.rdv {
		e.publishEager(e.mcast, r.comm, r.tag, r.data)
		e.finish(r, nil)
		return
	}
	e.nextID++
	r.id = e.nextID
	r.grants = make([]int, e.size)
	r.pulled = make([]uint8, e.size)
	e.sends[r.id] = r
	e.publishOn(e.mcast, header{kind: kRTS, src: e.rank, comm: r.comm, tag: r.tag, id: r.id, n: uint64(len(r.data))}, e.offerFor(r))
}

// recvNow is the blocking Recv's fast path: an eager message that has
// already arrived is taken without a Request. src is a rank of c or
// AnySource, already checked by the caller when it matters.
func (e *engine) recvNow(c *Comm, comm uint64, src, tag int) ([]byte, Status, bool) {
	if src < AnySource || src >= c.Size() || tag < AnyTag || c.closed.Load() {
		return nil, Status{}, false
	}
	if src != AnySource {
		src = c.worldRank(src)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, Status{}, false
	}
	q := e.queues[comm]
	if q == nil {
		return nil, Status{}, false
	}
	for i, v := range q.unexpected {
		if matches(src, tag, v.src, v.tag) {
			if v.rts {
				return nil, Status{}, false
			}
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			e.countRecv(len(v.data))
			traceArrived(c, v.src, comm, v.tag)
			return v.data, Status{Source: c.commRank(v.src), Tag: v.tag, Count: len(v.data)}, true
		}
	}
	return nil, Status{}, false
}

// transmit puts a send whose credit is available on the wire.
func (e *engine) transmit(r *Request) {
	p := &e.peers[r.peer]
	p.credit -= e.sendCost(r)
	if r.rdv {
		e.sends[r.id] = r
		e.publish(r.peer, header{kind: kRTS, src: e.rank, comm: r.comm, tag: r.tag, id: r.id, n: uint64(len(r.data))}, e.offerFor(r))
		return
	}
	e.publishEager(e.inbox[r.peer], r.comm, r.tag, r.data)
	e.finish(r, nil)
}

// publishEager sends a whole small message: with a binary header in front
// of a copy, or, from bigEager bytes on, with its header in a token and no
// copy.
func (e *engine) publishEager(subj string, comm uint64, tag int, data []byte) {
	if len(data) < bigEager {
		e.publishOn(subj, header{kind: kEager, src: e.rank, comm: comm, tag: tag}, data)
		return
	}
	e.countMulticast(subj)
	if err := e.nc.PublishRequest(subj, makeToken(tokEager, e.rank, comm, tag), data); err != nil {
		e.lose(err)
	}
}

// countMulticast counts a frame published on subj if it is this rank's
// multicast subject.
func (e *engine) countMulticast(subj string) {
	if e.mcast != "" && subj == e.mcast {
		e.mcSent.Add(1)
	}
}

func (e *engine) onCredit(subj string, h header) {
	p := &e.peers[h.src]
	if h.n == 0 || h.n > uint64(e.peerInfo[h.src].credit-p.credit) {
		e.violation(subj, "n", "a credit of %d bytes; at most %d were spent", h.n, e.peerInfo[h.src].credit-p.credit)
		return
	}
	p.credit += int64(h.n)
	for len(p.queue) > 0 && e.err == nil {
		r := p.queue[0]
		if p.credit < e.sendCost(r) {
			break
		}
		p.queue[0] = nil
		p.queue = p.queue[1:]
		r.queued = false
		e.transmit(r)
	}
	for len(e.mcQueue) > 0 && e.err == nil {
		r := e.mcQueue[0]
		if !e.mcastCredit(e.sendCost(r)) {
			break
		}
		e.mcQueue = remove(e.mcQueue, 0)
		r.queued = false
		e.transmitAll(r)
	}
}

// onCTS streams the granted part of a rendezvous send.
func (e *engine) onCTS(subj string, h header) {
	r := e.sends[h.id]
	if r == nil {
		return // withdrawn
	}
	if !r.mcast && r.peer != h.src {
		e.violation(subj, "id", "a grant for message %d, which this rank sent to rank %d", h.id, r.peer)
		return
	}
	prev := r.off
	if r.mcast {
		prev = r.grants[h.src]
		if r.pulled[h.src] != pullNone {
			e.violation(subj, "kind", "a grant for message %d, which the rank copies itself", h.id)
			return
		}
	}
	if h.n <= uint64(prev) || h.n > uint64(len(r.data)) {
		e.violation(subj, "n", "a grant up to byte %d of message %d, of %d bytes, already granted up to %d", h.n, h.id, len(r.data), prev)
		return
	}
	upto := int(h.n)
	if r.mcast {
		r.grants[h.src] = upto
		e.progress(r)
		return
	}
	if !e.stream(r, e.inbox[r.peer], upto) {
		return
	}
	if r.off == len(r.data) {
		delete(e.sends, r.id)
		e.finish(r, nil)
	}
}

// progress moves a multicast rendezvous send on: it publishes the chunks
// that every rank receiving by chunks has granted (each goes out once, for
// all of them), and completes the send once every rank has the message,
// by chunks or by a single copy.
func (e *engine) progress(r *Request) {
	upto, chunked, answered := len(r.data), false, true
	for p, g := range r.grants {
		if p != e.rank && r.pulled[p] == pullNone {
			chunked = true
			upto = min(upto, g)
			answered = answered && g > 0
		}
	}
	if answered {
		for p, st := range r.pulled {
			if st == pullWanted {
				r.pulled[p] = pullReading
				e.letCopy(r, p)
			}
		}
	}
	if chunked && !e.stream(r, e.mcast, upto) {
		return
	}
	if r.readers > 0 || (chunked && r.off < len(r.data)) {
		return
	}
	delete(e.sends, r.id)
	e.finish(r, r.err)
}

// stream publishes r's chunks up to byte upto on subj. It reports false if
// the connection failed.
func (e *engine) stream(r *Request, subj string, upto int) bool {
	for r.off < upto {
		n := min(e.chunk, upto-r.off)
		e.countMulticast(subj)
		err := e.nc.PublishRequest(subj, makeToken(tokChunk, e.rank, r.id, r.off), r.data[r.off:r.off+n])
		if err != nil {
			e.lose(err)
			return false
		}
		r.off += n
	}
	return true
}

// ---- receiving ----

// onMulticast handles a frame on the job's multicast subjects: the same
// frames as on an inbox, from a rank that sent them to every other.
func (e *engine) onMulticast(m *nats.Msg) {
	src, ok := subject.Sender(m.Subject, e.mcastPfx, e.size)
	if !ok || src == e.rank { // the connection has no echo: never our own
		e.drops.Add(1)
		return
	}
	e.onFrame(m, src, true)
	e.mu.Lock()
	e.peers[src].mcSeen++
	e.checkGone(src)
	e.mu.Unlock()
}

// onMsg is the inbox subscription's handler: every frame for this rank
// passes here, in the order the server delivers them. The sender is the
// last token of the subject, which the server lets only that rank publish
// on (see subject.Permissions); a frame whose subject names no rank of the
// job cannot come from a job member, and is dropped and counted.
func (e *engine) onMsg(m *nats.Msg) {
	src, ok := subject.Sender(m.Subject, e.inboxPfx, e.size)
	if !ok {
		e.drops.Add(1)
		return
	}
	e.onFrame(m, src, false)
}

// onFrame checks a frame from world rank src (taken from its subject) and
// acts on it. Every field read from the wire is checked against what this
// rank knows before it is used; a frame that fails is a protocol error
// (see violation).
func (e *engine) onFrame(m *nats.Msg, src int, mc bool) {
	blocked.Tick()
	<-e.started // a frame can come before this rank's start-up answer
	if m.Reply != "" {
		e.onToken(m.Subject, src, m.Reply, m.Data, mc)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return
	}
	h, err := parseHeader(m.Data)
	switch {
	case err != nil:
		e.violation(m.Subject, "length", "%d bytes, shorter than the %d-byte header", len(m.Data), hdrLen)
		return
	case h.src != src:
		e.violation(m.Subject, "src", "rank %d sent a frame that claims rank %d", src, h.src)
		return
	case src == e.rank:
		e.violation(m.Subject, "src", "a frame from this rank itself")
		return
	case mc && h.kind != kEager && h.kind != kRTS && h.kind != kCancel:
		e.violation(m.Subject, "kind", "kind %d is never multicast", h.kind)
		return
	case h.kind != kEager && h.kind != kRTS && len(m.Data) != hdrLen:
		e.violation(m.Subject, "length", "a kind %d frame of %d bytes, want %d", h.kind, len(m.Data), hdrLen)
		return
	}
	switch h.kind {
	case kEager:
		data := m.Data[hdrLen:]
		if e.checkTag(m.Subject, h.tag) && e.charge(m.Subject, src, int64(len(data))+frameCost) {
			e.arrive(h.comm, src, h.tag, data, nil)
		}
	case kRTS:
		v, ok := e.checkRTS(m.Subject, h, m.Data[hdrLen:])
		if ok && e.charge(m.Subject, src, frameCost) {
			e.arrive(h.comm, src, h.tag, nil, v)
		}
	case kCTS:
		e.onCTS(m.Subject, h)
	case kCredit:
		e.onCredit(m.Subject, h)
	case kCancel:
		e.onCancel(m.Subject, h)
	case kPull:
		e.onPull(m.Subject, h)
	case kGo:
		e.onGo(m.Subject, h)
	case kDone:
		e.onDone(m.Subject, h)
	case kBye: // never multicast: refused above
		p := &e.peers[src]
		if !p.bye {
			p.bye, p.byeAfter = true, h.n
			e.checkGone(src)
		}
	default:
		e.violation(m.Subject, "kind", "unknown frame kind %d", h.kind)
	}
}

// checkTag checks a message's tag. Called with e.mu held.
func (e *engine) checkTag(subj string, tag int) bool {
	if tag < 0 || tag > MaxTag {
		e.violation(subj, "tag", "tag %d is outside [0, %d]", tag, MaxTag)
		return false
	}
	return true
}

// checkRTS checks an RTS and its offer, and returns its envelope.
func (e *engine) checkRTS(subj string, h header, payload []byte) (*envelope, bool) {
	if !e.checkTag(subj, h.tag) {
		return nil, false
	}
	if h.n == 0 || h.n > maxMessage {
		e.violation(subj, "n", "a message of %d bytes announced; want 1 to %d", h.n, uint64(maxMessage))
		return nil, false
	}
	if h.id == 0 {
		e.violation(subj, "id", "message id 0")
		return nil, false
	}
	if _, dup := e.recvs[xferKey{h.src, h.id}]; dup {
		e.violation(subj, "id", "message id %d is already being received", h.id)
		return nil, false
	}
	v := &envelope{src: h.src, tag: h.tag, rts: true, id: h.id, size: int(h.n)}
	if len(payload) == 0 {
		return v, true
	}
	o, ok := parseOffer(payload)
	if !ok {
		e.violation(subj, "offer", "%d bytes, want %d or none", len(payload), offerLen)
		return nil, false
	}
	if ann := e.peerInfo[h.src]; o.host == 0 || o.pid != ann.pid || o.host != ann.host || o.addr == 0 {
		e.violation(subj, "offer", "pid %d on machine %x at %#x; rank %d announced pid %d on machine %x at start-up", o.pid, o.host, o.addr, h.src, ann.pid, ann.host)
		return nil, false
	}
	v.offer = o
	return v, true
}

// charge counts an eager frame (or an RTS) of cost bytes of credit from
// src; a sender that spends more than the credit this rank granted it is a
// protocol error. Called with e.mu held.
func (e *engine) charge(subj string, src int, cost int64) bool {
	p := &e.peers[src]
	if p.held+cost > e.credit {
		e.violation(subj, "credit", "rank %d sent %d bytes beyond the %d bytes of credit it has", src, p.held+cost-e.credit, e.credit)
		return false
	}
	p.held += cost
	return true
}

// violation fails this rank for a frame that breaks the protocol: every
// pending and later operation fails with an error wrapping ErrProtocol that
// names the frame's subject and field, and under gorun the rank says so
// and exits with status 1. Called with e.mu held.
func (e *engine) violation(subj, field, format string, args ...any) {
	if e.closing || e.err != nil {
		return
	}
	err := fmt.Errorf("%w: a frame on %s: field %s: %s", ErrProtocol, subj, field, fmt.Sprintf(format, args...))
	e.failAll(err)
	if e.opts.ExitOnLoss {
		fmt.Fprintf(os.Stderr, "mpi: rank %d: %v; exiting\n", e.rank, err)
		os.Exit(1)
	}
}

// arrive matches a message against the posted receives of its
// communicator, or keeps it as unexpected. rts is nil for eager data.
func (e *engine) arrive(comm uint64, src, tag int, data []byte, rts *envelope) {
	q := e.queue(comm)
	for i, r := range q.posted {
		if matches(r.peer, r.tag, src, tag) {
			q.posted = remove(q.posted, i)
			r.posted = false
			if rts != nil {
				e.consume(src, frameCost)
				e.startRecv(r, rts)
			} else {
				e.consume(src, int64(len(data))+frameCost)
				e.deliver(r, src, tag, data)
			}
			return
		}
	}
	if rts == nil {
		rts = &envelope{src: src, tag: tag, data: data}
	}
	if src != e.rank {
		p := &e.peers[src]
		p.waiting += rts.cost()
		e.stats.peakHeld = max(e.stats.peakHeld, p.waiting)
	}
	q.unexpected = append(q.unexpected, rts)
	close(e.arrived)
	e.arrived = make(chan struct{})
}

// take accounts for unexpected message v, matched by a receive.
func (e *engine) take(v *envelope) {
	if v.src != e.rank {
		e.peers[v.src].waiting -= v.cost()
	}
	e.consume(v.src, v.cost())
}

// consume counts eager bytes from src as received, and returns credit to
// the sender once a quarter of its share is used.
func (e *engine) consume(src int, n int64) {
	if src == e.rank {
		return
	}
	p := &e.peers[src]
	p.consumed += n
	if p.consumed >= e.credit/4 {
		e.publish(src, header{kind: kCredit, src: e.rank, n: uint64(p.consumed)}, nil)
		p.held -= p.consumed
		p.consumed = 0
	}
}

// postRecv matches a new receive against the unexpected messages, or posts
// it. Called with e.mu held.
func (e *engine) postRecv(r *Request) {
	if e.err != nil {
		e.finish(r, e.err)
		return
	}
	q := e.queue(r.comm)
	for i, v := range q.unexpected {
		if matches(r.peer, r.tag, v.src, v.tag) {
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			if v.rts {
				e.startRecv(r, v)
			} else {
				e.deliver(r, v.src, v.tag, v.data)
			}
			return
		}
	}
	if err := e.lostFor(r); err != nil {
		e.finish(r, err)
		return
	}
	r.posted = true
	q.posted = append(q.posted, r)
}

// deliver completes receive r with an eager message from world rank src:
// the message itself, or a copy in r's buffer. Called with e.mu held.
func (e *engine) deliver(r *Request, src, tag int, data []byte) {
	traceArrived(r.c, src, r.comm, tag)
	r.status = Status{Source: r.c.commRank(src), Tag: tag, Count: len(data)}
	if !r.hasInto {
		r.data = data
		e.finish(r, nil)
		return
	}
	if len(data) > len(r.into) {
		e.finish(r, truncated(r, len(data)))
		return
	}
	r.data = r.into[:copy(r.into, data)]
	e.finish(r, nil)
}

// truncated is the error of receive r, whose buffer is too small for a
// message of size bytes.
func truncated(r *Request, size int) error {
	return &RankError{Rank: r.status.Source, Op: "recv", Err: fmt.Errorf("a message of %d bytes does not fit the %d-byte buffer: %w", size, len(r.into), ErrTruncate)}
}

// startRecv begins the rendezvous of a large message matched by r.
func (e *engine) startRecv(r *Request, v *envelope) {
	r.rdv, r.id, r.size = true, v.id, v.size
	r.from = v.src
	traceArrived(r.c, v.src, r.comm, v.tag)
	r.status = Status{Source: r.c.commRank(v.src), Tag: v.tag, Count: v.size}
	if r.hasInto {
		if v.size > len(r.into) {
			// The message is taken, and dropped: the sender is done with it.
			e.publish(v.src, header{kind: kDone, src: e.rank, id: v.id}, nil)
			e.finish(r, truncated(r, v.size))
			return
		}
		r.data = r.into[:v.size]
	}
	if v.offer.host != 0 && e.canRead(v.src, v.offer) {
		e.startPull(r, v)
		return
	}
	e.recvs[xferKey{v.src, v.id}] = r
	e.grantQ = append(e.grantQ, r)
	e.pumpGrants()
}

// pumpGrants hands out rendezvous window to the receives waiting for it,
// first come first served.
func (e *engine) pumpGrants() {
	for len(e.grantQ) > 0 {
		r := e.grantQ[0]
		g := min(r.size-r.granted, e.grantStep)
		if int64(g) > e.window {
			return
		}
		e.window -= int64(g)
		e.stats.peakWindow = max(e.stats.peakWindow, int64(e.opts.RendezvousWindow)-e.window)
		r.granted += g
		e.publish(r.from, header{kind: kCTS, src: e.rank, id: r.id, n: uint64(r.granted)}, nil)
		if r.granted == r.size {
			e.grantQ[0] = nil
			e.grantQ = e.grantQ[1:]
		}
	}
}

// onToken handles a frame from src whose header is in its reply subject.
func (e *engine) onToken(subj string, src int, token string, data []byte, mc bool) {
	kind, tsrc, a, b, ok := parseToken(token)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return
	}
	switch {
	case !ok:
		e.violation(subj, "reply token", "%.40q is not a frame header", token)
	case tsrc != src:
		e.violation(subj, "src", "rank %d sent a frame that claims rank %d", src, tsrc)
	case src == e.rank:
		e.violation(subj, "src", "a frame from this rank itself")
	case kind == tokEager:
		if e.checkTag(subj, b) && e.charge(subj, src, int64(len(data))+frameCost) {
			e.arrive(a, src, b, data, nil)
		}
	case kind == tokChunk:
		e.onChunk(subj, src, a, b, data, mc)
	default:
		e.violation(subj, "reply token", "unknown kind %q", kind)
	}
}

func (e *engine) onChunk(subj string, src int, id uint64, off int, data []byte, mc bool) {
	r := e.recvs[xferKey{src, id}]
	if r == nil {
		e.drops.Add(1) // not ours (withdrawn, or never announced)
		return
	}
	if r.pull.host != 0 {
		if !mc {
			e.violation(subj, "reply token", "a chunk of message %d, which this rank copies itself", id)
		}
		return // multicast chunks for the ranks that do not copy
	}
	if off != r.off || len(data) == 0 || len(data) > r.granted-r.off {
		e.violation(subj, "reply token", "a chunk of %d bytes at offset %d of message %d; %d bytes arrived, %d granted", len(data), off, id, r.off, r.granted)
		return
	}
	e.window += int64(len(data))
	if !r.abandoned {
		if r.data == nil && off == 0 && len(data) == r.size {
			r.data = data // the whole message in one chunk: keep it, no copy
		} else {
			if len(r.data) < off+len(data) {
				r.data = growBuffer(r.data, off+len(data), r.size)
			}
			copy(r.data[off:], data)
		}
	}
	r.off += len(data)
	if r.off == r.size {
		delete(e.recvs, xferKey{src, id})
		if r.abandoned {
			r.data = nil
		} else {
			e.finish(r, nil)
		}
	}
	e.pumpGrants()
}

// growBuffer returns buf (a chunked receive's message so far) with room for
// need bytes of a size-byte message: all of it at once up to bigAlloc,
// beyond that doubling with the bytes that arrive.
func growBuffer(buf []byte, need, size int) []byte {
	n := size
	if size > bigAlloc {
		n = min(size, max(need, 2*len(buf), bigAlloc))
	}
	b := make([]byte, n)
	copy(b, buf)
	return b
}

// onCancel withdraws a rendezvous message whose sender gave up.
func (e *engine) onCancel(subj string, h header) {
	key := xferKey{h.src, h.id}
	if r := e.recvs[key]; r != nil {
		if r.copying {
			e.violation(subj, "id", "message %d withdrawn while this rank copies it", h.id)
			return
		}
		delete(e.recvs, key)
		e.window += int64(r.granted - r.off)
		e.grantQ = removeItem(e.grantQ, r)
		if !r.abandoned {
			e.finish(r, &RankError{Rank: r.status.Source, Op: "recv", Err: fmt.Errorf("sender withdrew the message: %w", ErrCanceled)})
		}
		e.pumpGrants()
		return
	}
	q := e.queue(h.comm)
	for i, v := range q.unexpected {
		if v.rts && v.src == h.src && v.id == h.id {
			q.unexpected = remove(q.unexpected, i)
			e.take(v)
			return
		}
	}
}

// probe returns the status of the first unexpected message that a receive
// (src, tag) would match, or a channel that is closed when another arrives.
func (e *engine) probe(c *Comm, comm uint64, src, tag int) (Status, bool, <-chan struct{}, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return Status{}, false, nil, e.err
	}
	for _, v := range e.queue(comm).unexpected {
		if matches(src, tag, v.src, v.tag) {
			return Status{Source: c.commRank(v.src), Tag: v.tag, Count: v.count()}, true, nil, nil
		}
	}
	if w, lost := e.lost(c, src); lost {
		return Status{}, false, nil, &RankError{Rank: c.commRank(w), Op: "probe", Err: ErrPeerLost}
	}
	return Status{}, false, e.arrived, nil
}

// countSent counts n messages of size bytes sent. Called with e.mu held.
func (e *engine) countSent(n, size int) {
	e.traffic.SentMsgs += int64(n)
	e.traffic.SentBytes += int64(n) * int64(size)
	e.traffic.Largest = max(e.traffic.Largest, int64(size))
}

// countRecv counts a message of size bytes received. Called with e.mu
// held.
func (e *engine) countRecv(size int) {
	e.traffic.RecvMsgs++
	e.traffic.RecvBytes += int64(size)
	e.traffic.Largest = max(e.traffic.Largest, int64(size))
}

// ---- peers that closed ----

// checkGone marks world rank src gone once it said bye and every
// multicast frame it sent before has been handled (multicast frames come
// on a subscription of their own, in their own order), and fails what
// waits for it. Called with e.mu held.
func (e *engine) checkGone(src int) {
	p := &e.peers[src]
	if !p.bye || p.gone || p.mcSeen < p.byeAfter {
		return
	}
	p.gone = true
	for _, q := range e.queues {
		kept := q.posted[:0]
		for _, r := range q.posted {
			if err := e.lostFor(r); err != nil {
				r.posted = false
				e.finish(r, err)
			} else {
				kept = append(kept, r)
			}
		}
		clear(q.posted[len(kept):])
		q.posted = kept
	}
	for _, r := range p.queue {
		e.finish(r, peerLost(r, src))
	}
	p.queue = nil
	for id, r := range e.sends {
		// A multicast send another rank copies from stays: the copy ends it.
		if r.peer == src || (r.mcast && r.readers == 0) {
			delete(e.sends, id)
			e.finish(r, peerLost(r, src))
		}
	}
	for _, r := range e.mcQueue {
		e.finish(r, peerLost(r, src))
	}
	e.mcQueue = nil
	for k, r := range e.recvs {
		if k.src == src && !r.copying {
			delete(e.recvs, k)
			e.grantQ = removeItem(e.grantQ, r)
			e.finish(r, peerLost(r, src))
		}
	}
	close(e.arrived) // a Probe waiting for src looks again
	e.arrived = make(chan struct{})
}

// lost reports whether a receive from src (a communicator rank of c, or
// AnySource) can never match: src is gone. A receive from AnySource can
// always match (another goroutine of this rank may send to it), and so can
// any receive from this rank itself. It returns the world rank to name.
// Called with e.mu held.
func (e *engine) lost(c *Comm, src int) (int, bool) {
	if src == AnySource {
		return 0, false
	}
	w := c.worldRank(src)
	return w, e.peers[w].gone
}

// lostFor is the error of a posted receive r that can never match, or
// nil. Called with e.mu held.
func (e *engine) lostFor(r *Request) error {
	src := r.peer
	if src != AnySource {
		src = r.c.commRank(src)
	}
	if w, lost := e.lost(r.c, src); lost {
		return &RankError{Rank: r.c.commRank(w), Op: "recv", Err: ErrPeerLost}
	}
	return nil
}

// peerLost is the error of r, a send to or a receive from world rank w,
// which is gone.
func peerLost(r *Request, w int) error {
	op := "recv"
	if r.send {
		op = "send"
	}
	return &RankError{Rank: r.c.commRank(w), Op: op, Err: ErrPeerLost}
}

// sayBye tells every other rank that this one has closed its world, after
// the multicast frames it has sent. Called with e.mu held.
func (e *engine) sayBye() {
	h := header{kind: kBye, src: e.rank, n: e.mcSent.Load()}
	for w := range e.size {
		if w != e.rank {
			e.publish(w, h, nil)
		}
	}
}

// ---- completion, cancellation and failure ----

// finish completes r once. Called with e.mu held.
func (e *engine) finish(r *Request, err error) {
	if r.finished {
		return
	}
	r.finished = true
	r.err = err
	if err == nil && !r.abandoned {
		if !r.send {
			e.countRecv(len(r.data))
		} else if r.mcast {
			e.countSent(e.size-1, len(r.data))
		} else {
			e.countSent(1, len(r.data))
		}
	}
	if r.send && r.counted {
		e.inflight--
		if e.inflight == 0 && e.idle != nil {
			close(e.idle)
			e.idle = nil
		}
	}
	close(r.done)
}

// cancel withdraws r if it has not started moving data. A receive already
// matched to a large message is abandoned instead when abandon is set: the
// transfer runs to its end and its data is dropped. It reports whether r
// was withdrawn or abandoned.
func (e *engine) cancel(r *Request, err error, abandon bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.finished {
		return false
	}
	switch {
	case !r.send && r.posted:
		q := e.queue(r.comm)
		q.posted = removeItem(q.posted, r)
		r.posted = false
	case !r.send && r.rdv && r.copying && r.hasInto:
		return false // the copy is writing into the caller's buffer
	case !r.send && r.rdv:
		if !abandon {
			return false
		}
		r.abandoned = true
		r.data = nil
	case r.send && r.queued && r.mcast:
		e.mcQueue = removeItem(e.mcQueue, r)
		r.queued = false
	case r.send && r.queued:
		p := &e.peers[r.peer]
		p.queue = removeItem(p.queue, r)
		r.queued = false
	case r.send && r.rdv && r.readers > 0:
		return false // a receiver is copying it out of our memory
	case r.send && r.rdv:
		delete(e.sends, r.id)
		subj := e.mcast
		if !r.mcast {
			subj = e.inbox[r.peer]
		}
		e.publishOn(subj, header{kind: kCancel, src: e.rank, comm: r.comm, tag: r.tag, id: r.id}, nil)
	default:
		return false
	}
	e.finish(r, err)
	return true
}

// failAll sets the sticky error and fails every pending operation with it.
// Called with e.mu held.
func (e *engine) failAll(err error) {
	if e.err != nil {
		return
	}
	e.err = err
	for _, q := range e.queues {
		for _, r := range q.posted {
			e.finish(r, err)
		}
		q.posted = nil
	}
	for i := range e.peers {
		for _, r := range e.peers[i].queue {
			e.finish(r, err)
		}
		e.peers[i].queue = nil
	}
	for _, r := range e.mcQueue {
		e.finish(r, err)
	}
	e.mcQueue = nil
	for _, r := range e.sends {
		e.finish(r, err)
	}
	for _, r := range e.recvs {
		if !r.copying { // a copy still writing into r's buffer ends it itself
			e.finish(r, err)
		}
	}
	clear(e.sends)
	clear(e.recvs)
	e.grantQ = nil
	close(e.arrived)
	e.arrived = make(chan struct{})
}

// lose handles the loss of the connection. Called with e.mu held.
func (e *engine) lose(cause error) {
	if e.closing || e.err != nil {
		return
	}
	err := fmt.Errorf("%w: %v", ErrConnLost, cause)
	e.failAll(err)
	if e.opts.ExitOnLoss {
		fmt.Fprintf(os.Stderr, "mpi: rank %d: %v; exiting\n", e.rank, err)
		os.Exit(1)
	}
}

// onAbort handles another rank's Abort.
func (e *engine) onAbort(m *nats.Msg) {
	src, ok := subject.Sender(m.Subject, e.abortPfx, e.size)
	if !ok || src == e.rank {
		e.drops.Add(1)
		return
	}
	<-e.started
	rank, code, ok := parseAbort(m.Data)
	e.mu.Lock()
	bad := true
	switch {
	case !ok:
		e.violation(m.Subject, "length", "an abort of %d bytes, want 8", len(m.Data))
	case rank != src:
		e.violation(m.Subject, "rank", "rank %d sent an abort that claims rank %d", src, rank)
	case code < 1 || code > 255:
		e.violation(m.Subject, "code", "exit code %d is outside [1, 255]", code)
	default:
		bad = false
	}
	if bad {
		e.mu.Unlock()
		return
	}
	e.failAll(&AbortError{Rank: rank, Code: code})
	e.mu.Unlock()
	if e.opts.fromEnv {
		// Like MPI_Abort: every process of the job ends, with the code.
		os.Exit(code)
	}
}

// waitIdle waits until every send is complete, or d passes.
func (e *engine) waitIdle(d time.Duration) bool {
	e.mu.Lock()
	if e.inflight == 0 {
		e.mu.Unlock()
		return true
	}
	if e.idle == nil {
		e.idle = make(chan struct{})
	}
	idle := e.idle
	e.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// remove deletes s[i], keeping the order. Taking the head (the common
// case: matching is mostly FIFO) is O(1); emptying the slice keeps its
// capacity for the next append.
func remove[T any](s []T, i int) []T {
	var zero T
	if len(s) == 1 {
		s[0] = zero
		return s[:0]
	}
	if i == 0 {
		s[0] = zero
		return s[1:]
	}
	copy(s[i:], s[i+1:])
	s[len(s)-1] = zero
	return s[:len(s)-1]
}

func removeItem[T comparable](s []T, x T) []T {
	for i, y := range s {
		if y == x {
			return remove(s, i)
		}
	}
	return s
}

// matches reports whether a receive for (src, tag), either of which may be
// AnySource or AnyTag, takes a message from source with msgTag: the one
// matching rule, for posted receives, probes and unexpected messages alike.
func matches(src, tag, source, msgTag int) bool {
	return (src == AnySource || src == source) && (tag == AnyTag || tag == msgTag)
}
