package mpi

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/gorun-hpc/gorun/internal/blocked"
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
	tr         transport     // nil for a singleton
	reports    bool          // this is the world gorun started: report Init, Close and Abort (control.go)
	peerInfo   []hello       // what each rank announced at start-up (pid, host, the credit it grants)
	drops      atomic.Int64  // frames dropped because no job member can have sent them
	mcSent     atomic.Uint64 // multicast frames this rank published, for its bye
	sharing    atomic.Bool   // two ranks of the world announced one shared-memory segment: no rank multicasts (see multicast)
	started    chan struct{} // closed once peerInfo is known (or Init failed): frames wait for it
	startOnce  sync.Once
	chunk      int                                          // payload bytes of one rendezvous chunk
	pid        int                                          // this process, for single-copy offers
	host       uint64                                       // hostIdentity, or 0 when single-copy transfers are off
	read       func(pid int, addr uint64, buf []byte) error // readRemote, or a test's
	grantStep  int                                          // bytes granted by one CTS
	share      int64                                        // the eager credit this rank grants each peer
	shmOwn     shmHello                                     // what this rank announces of its shared-memory segment (shmtransport.go)

	mu       sync.Mutex
	err      error // sticky: once set, every operation fails with it
	closing  bool
	queues   map[uint64]*matchQueue
	peers    []peer
	mcQueue  []*Request          // multicast sends waiting for credit at some peer, in order
	sends    map[uint64]*Request // rendezvous sends, by message id
	recvs    map[xferKey]*Request
	grantQ   []*Request     // rendezvous receives still to be granted, in order
	readable []uint8        // per world rank: can this rank copy out of its memory (readUnknown, readOK, readNo)
	offerBuf [offerLen]byte // the payload of the RTS being sent (offerFor)
	window   int64          // rendezvous bytes this rank may still grant
	nextID   uint64
	arrived  chan struct{}         // closed and replaced whenever a message becomes unexpected
	anyDone  chan struct{}         // closed (and cleared) when a request finishes, if WaitAny or WaitSome waits (test.go)
	probed   map[xferKey]*envelope // large messages matched by Mprobe, not yet received: a withdrawal finds them here (probe.go)
	inflight int                   // sends not yet complete
	idle     chan struct{}         // closed when inflight falls to zero, for Close
	stats    flowStats
	traffic  blocked.Stats // messages and bytes, for gorun --stats (Ops unused)
	paths    pathStats     // what left by each path, for gorun --stats
}

// flowStats count what the flow control did, for tests that check that it
// works (export_test.go).
type flowStats struct {
	creditWaits int64 // sends that waited for eager credit, or went as a rendezvous for want of it
	peakHeld    int64 // most unreceived eager bytes (frameCost each included) from one peer at once
	peakWindow  int64 // most rendezvous bytes granted and not yet received at once
}

// peer is this rank's state towards one other rank.
type peer struct {
	left     int64      // eager bytes this rank may still send to the peer, of the credit the peer granted it
	queue    []*Request // sends to the peer waiting for credit, in order
	consumed int64      // eager bytes from the peer received but not yet credited back
	held     int64      // eager bytes from the peer received and not yet credited back (consumed or not)
	waiting  int64      // eager bytes from the peer waiting, unexpected, for a receive
	mcSeen   uint64     // multicast frames from the peer handled so far
	bye      bool       // the peer said it closed its world...
	byeAfter uint64     // ...after this many multicast frames
	gone     bool       // ...and they have all been handled: it will never send again
	died     bool       // gone because gorun said it died (not its bye): ErrPeerDied
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
	offer    offer    // rts: where the sender offers the bytes for a single copy
	ssend    *Request // a synchronous send to this rank itself, finished when a receive takes it (ssend.go)
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
		if o.pid != 0 {
			e.pid = o.pid
		}
	}
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
	e.share = min
	if e.size > 1 {
		e.share = max(int64(e.opts.EagerBudget)/int64(e.size-1), min)
	}
	for i := range e.peers {
		e.peers[i].left = e.share
	}
	e.peerInfo = make([]hello, e.size)
	for i := range e.peerInfo {
		e.peerInfo[i] = hello{credit: e.share}
	}
}

func (e *engine) queue(comm uint64) *matchQueue {
	q := e.queues[comm]
	if q == nil {
		q = &matchQueue{}
		e.queues[comm] = q
	}
	return q
}

// publish sends one frame to a world rank, or to every other (toAll).
// It reports false if the connection failed. Called with e.mu held.
func (e *engine) publish(dst int, h header, data []byte) bool {
	if dst == toAll {
		e.mcSent.Add(1)
	}
	if err := e.tr.send(dst, h, data); err != nil {
		e.lose(err)
		return false
	}
	return true
}

// multicast reports whether SendAll can go out as one frame to every rank.
// Every rank of the world answers the same, as collectives choose their
// algorithms by it: where ranks share a host's rings, SendAll to each peer
// in turn (over the rings where it can) beats one publish through the bus,
// and then every rank sends so, the ranks alone on their hosts too. The
// transports' own answers agree where the ranks were given the same
// options; whether ranks share a segment, every rank reads from the same
// table of what the ranks announced at start-up.
func (e *engine) multicast() bool {
	return e.tr != nil && e.tr.multicast() && !e.sharing.Load()
}

// countSent counts n messages of size bytes sent. Called with e.mu held.
// pathStats counts what left a rank by each path (gorun --stats), as the
// transports and single copies move it; atomics, as the transports count
// with or without e.mu.
type pathStats struct {
	busFrames, busBytes, ringFrames, ringBytes, copyBytes atomic.Int64
}

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
