// Package memnet is an in-memory network for the ranks of one job, run as
// goroutines of one process, with faults a test can inject: seeded delays,
// frames of different senders (and of the two streams) overtaking each
// other, a rank cut off, a receiver stopped. Frames of one sender on one
// stream are never reordered, as on a NATS connection.
//
// A Network is made for one job of a fixed size. Each rank's transport
// takes its Endpoint, attaches its handlers, joins (Join returns once every
// rank has joined, with what each announced), then sends frames to one rank
// or to every other (Send with ToAll). mpi's in-memory transport and
// mpitest's Net are its users.
package memnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ToAll, as Send's destination, is every other rank: the multicast stream.
const ToAll = -1

// DefaultMaxPayload is what one frame may hold unless Config says
// otherwise: what a NATS server allows by default.
const DefaultMaxPayload = 1 << 20

// Errors of an endpoint that can no longer send.
var (
	// ErrCut is the error of a rank that Network.Cut cut off.
	ErrCut = errors.New("memnet: cut off from the network")
	// ErrSlowConsumer is the error of a rank that let more than
	// Config.MaxPending bytes wait for it, and was dropped for it.
	ErrSlowConsumer = errors.New("memnet: slow consumer")
	// ErrClosed is the error of a send on an endpoint that closed.
	ErrClosed = errors.New("memnet: endpoint closed")
)

// Config is the faults a Network injects. The zero Config delivers every
// frame at once, in the order sent.
type Config struct {
	// Seed seeds every random choice the network makes.
	Seed uint64
	// MaxDelay bounds the delay of each frame, drawn from [0, MaxDelay):
	// a later frame of the same sender and stream waits for the earlier.
	MaxDelay time.Duration
	// Reorder delivers the frames that are due to a receiver in a random
	// order across senders and streams (never within one).
	Reorder bool
	// MaxPending, when positive, is how many bytes may wait for one
	// receiver: a receiver with more waiting is dropped, like a NATS
	// server's slow consumer, and its peers see it as lost.
	MaxPending int64
	// MaxPayload is what one frame may hold; 0 means DefaultMaxPayload.
	MaxPayload int
}

// Handlers are what an endpoint calls as frames and events arrive. Inbox
// and Multicast are each called from one goroutine at a time; frame is
// the receiver's to keep.
type Handlers struct {
	Inbox     func(src int, frame []byte)
	Multicast func(src int, frame []byte)
	Abort     func(src int, data []byte)
	// Lost tells that rank src is gone (cut off or dropped): nothing more
	// will come from it. It comes after every frame that src's stream
	// delivered before.
	Lost func(src int)
	// Closed tells that this endpoint is gone, and why.
	Closed func(err error)
}

// Network connects the endpoints of one job.
type Network struct {
	cfg  Config
	size int
	eps  []*Endpoint

	mu     sync.Mutex
	rng    *rand.Rand
	seq    uint64
	joined int
	hellos [][]byte
	all    chan struct{} // closed when every rank has joined
}

// New returns a network for a job of size ranks.
func New(size int, cfg Config) *Network {
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	n := &Network{cfg: cfg, size: size, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6a09e667f3bcc909)), hellos: make([][]byte, size), all: make(chan struct{})}
	n.eps = make([]*Endpoint, size)
	for r := range n.eps {
		ep := &Endpoint{n: n, rank: r, wake: make(chan struct{}, 1), quit: make(chan struct{})}
		ep.streams[0].from = make([][]item, size)
		ep.streams[1].from = make([][]item, size)
		n.eps[r] = ep
	}
	return n
}

// Size is the number of ranks of the network's job.
func (n *Network) Size() int { return n.size }

// MaxPayload is what one frame may hold.
func (n *Network) MaxPayload() int { return n.cfg.MaxPayload }

// Endpoint returns rank's end of the network.
func (n *Network) Endpoint(rank int) *Endpoint { return n.eps[rank] }

// Cut cuts rank off: what it sent and is still in flight is lost, its
// sends fail with ErrCut, and its handlers' Closed is called with it; every
// other rank's Lost is called with rank.
func (n *Network) Cut(rank int) { n.drop(rank, ErrCut) }

// Stop stops delivering to rank (a stopped process, a debugger): frames
// for it wait, counted against MaxPending, until Resume.
func (n *Network) Stop(rank int) {
	ep := n.eps[rank]
	ep.mu.Lock()
	ep.stopped = true
	ep.mu.Unlock()
}

// Resume delivers to rank again, after Stop.
func (n *Network) Resume(rank int) {
	ep := n.eps[rank]
	ep.mu.Lock()
	ep.stopped = false
	ep.mu.Unlock()
	ep.poke()
}

// Pending is how many bytes wait for rank now, and the most that ever did.
func (n *Network) Pending(rank int) (now, peak int64) {
	ep := n.eps[rank]
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.pending, ep.peak
}

// drop ends rank's endpoint with err and tells the others.
func (n *Network) drop(rank int, err error) {
	ep := n.eps[rank]
	ep.mu.Lock()
	if ep.err != nil {
		ep.mu.Unlock()
		return
	}
	ep.err = err
	h := ep.h
	ep.mu.Unlock()
	for _, o := range n.eps {
		if o != ep {
			o.lost(rank)
		}
	}
	ep.poke()
	if h.Closed != nil {
		go h.Closed(err)
	}
}

// draw returns a delay for a new frame and the frame's sequence number.
func (n *Network) draw() (time.Duration, uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seq++
	var d time.Duration
	if n.cfg.MaxDelay > 0 {
		d = time.Duration(n.rng.Int64N(int64(n.cfg.MaxDelay)))
	}
	return d, n.seq
}

// pick returns one of k choices at random.
func (n *Network) pick(k int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rng.IntN(k)
}

// item is a frame on its way, or the news that its sender is lost.
type item struct {
	frame []byte
	due   time.Time
	seq   uint64
	lost  bool
}

// stream is a receiver's frames of one stream (inbox or multicast), one
// queue per sender.
type stream struct {
	from [][]item
}

// Endpoint is one rank's end of a Network.
type Endpoint struct {
	n    *Network
	rank int
	wake chan struct{}
	quit chan struct{}

	mu      sync.Mutex
	h       Handlers
	streams [2]stream // inbox, multicast
	pending int64
	peak    int64
	stopped bool
	closed  bool
	err     error // why it can no longer send
	running bool
}

// MaxPayload is what one frame may hold.
func (ep *Endpoint) MaxPayload() int { return ep.n.cfg.MaxPayload }

// Attach sets the handlers and starts delivering to them.
func (ep *Endpoint) Attach(h Handlers) {
	ep.mu.Lock()
	ep.h = h
	start := !ep.running
	ep.running = true
	ep.mu.Unlock()
	if start {
		go ep.deliver()
	}
}

// Join announces hello and returns, once every rank has joined, what each
// announced, indexed by rank.
func (ep *Endpoint) Join(ctx context.Context, hello []byte) ([][]byte, error) {
	n := ep.n
	n.mu.Lock()
	if n.hellos[ep.rank] == nil {
		n.hellos[ep.rank] = append([]byte{}, hello...)
		if n.joined++; n.joined == n.size {
			close(n.all)
		}
	}
	n.mu.Unlock()
	select {
	case <-n.all:
		return n.hellos, nil
	case <-ctx.Done():
		n.mu.Lock()
		defer n.mu.Unlock()
		var missing []int
		for r, h := range n.hellos {
			if h == nil {
				missing = append(missing, r)
			}
		}
		return nil, fmt.Errorf("ranks %v never joined: %w", missing, ctx.Err())
	}
}

// Send sends a copy of frame to rank dst, or to every other rank (ToAll).
func (ep *Endpoint) Send(dst int, frame []byte) error {
	ep.mu.Lock()
	err := ep.err
	ep.mu.Unlock()
	if err != nil {
		return err
	}
	if len(frame) > ep.n.cfg.MaxPayload {
		return fmt.Errorf("memnet: a frame of %d bytes, more than the %d a frame may hold", len(frame), ep.n.cfg.MaxPayload)
	}
	d, seq := ep.n.draw()
	due := time.Now().Add(d)
	s, mc := 0, false
	if dst == ToAll {
		s, mc = 1, true
	}
	for r, o := range ep.n.eps {
		if r != ep.rank && (mc || r == dst) {
			o.put(s, ep.rank, item{frame: append([]byte(nil), frame...), due: due, seq: seq})
		}
	}
	return nil
}

// Abort tells every other rank's Abort handler.
func (ep *Endpoint) Abort(data []byte) {
	for _, o := range ep.n.eps {
		if o == ep {
			continue
		}
		o.mu.Lock()
		h := o.h.Abort
		o.mu.Unlock()
		if h != nil {
			go h(ep.rank, append([]byte(nil), data...))
		}
	}
}

// Close ends delivery to the endpoint, and its sends.
func (ep *Endpoint) Close() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if !ep.closed {
		ep.closed = true
		if ep.err == nil {
			ep.err = ErrClosed
		}
		close(ep.quit)
	}
}

// put queues it for delivery from src on stream s.
func (ep *Endpoint) put(s, src int, it item) {
	ep.mu.Lock()
	if ep.err != nil {
		ep.mu.Unlock()
		return
	}
	q := ep.streams[s].from[src]
	if k := len(q); k > 0 && q[k-1].due.After(it.due) {
		it.due = q[k-1].due // never before an earlier frame of the stream
	}
	ep.streams[s].from[src] = append(q, it)
	ep.pending += int64(len(it.frame))
	ep.peak = max(ep.peak, ep.pending)
	over := ep.n.cfg.MaxPending > 0 && ep.pending > ep.n.cfg.MaxPending
	pending := ep.pending
	ep.mu.Unlock()
	if over {
		ep.n.drop(ep.rank, fmt.Errorf("%w: %d bytes waited for it, more than the %d allowed", ErrSlowConsumer, pending, ep.n.cfg.MaxPending))
		return
	}
	ep.poke()
}

// lost drops what src sent that is still in flight to ep, and queues the
// news that src is gone.
func (ep *Endpoint) lost(src int) {
	ep.mu.Lock()
	for s := range ep.streams {
		for _, it := range ep.streams[s].from[src] {
			ep.pending -= int64(len(it.frame))
		}
		ep.streams[s].from[src] = nil
	}
	ep.streams[0].from[src] = []item{{lost: true}}
	ep.mu.Unlock()
	ep.poke()
}

func (ep *Endpoint) poke() {
	select {
	case ep.wake <- struct{}{}:
	default:
	}
}

// deliver runs the endpoint's two streams, each on a goroutine of its own,
// as the two subscriptions of a NATS connection do.
func (ep *Endpoint) deliver() {
	var wg sync.WaitGroup
	kick := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	for s := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep.run(s, kick[s])
		}()
	}
	for {
		select {
		case <-ep.wake:
			for _, k := range kick {
				select {
				case k <- struct{}{}:
				default:
				}
			}
		case <-ep.quit:
			wg.Wait()
			return
		}
	}
}

// run delivers stream s: the frames that are due, a sender's in order,
// across senders in the order sent or (Reorder) at random.
func (ep *Endpoint) run(s int, kick chan struct{}) {
	for {
		it, src, wait, ok := ep.next(s)
		if ok {
			ep.hand(s, src, it)
			continue
		}
		var due <-chan time.Time
		if wait > 0 {
			due = time.After(wait)
		}
		select {
		case <-kick:
		case <-due:
		case <-ep.quit:
			return
		}
	}
}

// next takes the next frame of stream s to deliver, if one is due; if not,
// wait is how long until one is (0: none is queued).
func (ep *Endpoint) next(s int) (it item, src int, wait time.Duration, ok bool) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.stopped || ep.closed {
		return item{}, 0, 0, false
	}
	now := time.Now()
	var due []int
	for r, q := range ep.streams[s].from {
		if len(q) == 0 {
			continue
		}
		if d := q[0].due.Sub(now); d > 0 {
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		due = append(due, r)
	}
	if len(due) == 0 {
		return item{}, 0, wait, false
	}
	src = due[0]
	if ep.n.cfg.Reorder {
		src = due[ep.n.pick(len(due))]
	} else {
		for _, r := range due[1:] {
			if ep.streams[s].from[r][0].seq < ep.streams[s].from[src][0].seq {
				src = r
			}
		}
	}
	q := ep.streams[s].from[src]
	it = q[0]
	q[0] = item{}
	ep.streams[s].from[src] = q[1:]
	ep.pending -= int64(len(it.frame))
	return it, src, 0, true
}

// hand gives one item to the handlers.
func (ep *Endpoint) hand(s, src int, it item) {
	ep.mu.Lock()
	h := ep.h
	ep.mu.Unlock()
	switch {
	case it.lost:
		if h.Lost != nil {
			h.Lost(src)
		}
	case s == 0:
		h.Inbox(src, it.frame)
	default:
		h.Multicast(src, it.frame)
	}
}
