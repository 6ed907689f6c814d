package launcher

import (
	"io"
	"sync/atomic"
	"time"
)

// Heartbeats between gorun and a host's agent. A host cut off from the
// network (its link down, its processes alive) says nothing: no EOF, no
// reset, until ssh's own keepalive gives up after 30-40 s, and its ranks
// would run on there for ever. So each side writes a heartbeat frame
// (frameBeat, 5 bytes) on the agent channel every HeartbeatInterval, and
// each side holds the other lost once its reader has waited
// HeartbeatTimeout for a byte in vain: gorun then ends the session and the
// job, naming the host; the agent stops its ranks (SIGTERM, SIGKILL after
// the grace, every descendant) and exits, a dead-man switch.
//
// Any byte counts, not only a heartbeat: a rank's output that fills the
// channel is as good a sign of life, and a heartbeat queued behind it is
// not needed. The beats are one-way on each side, never an answer to a
// ping, so that neither side's heartbeat waits for its own reader.
//
// A reader that is not reading does not count the silence: while gorun's
// reader hands a rank's output on to a standard output that does not
// drain, or the agent's reader hands rank 0's input to a rank that does
// not read it, the channel backs up and the other side's beats stay in
// it, through no fault of the link. The silence counts again from the
// moment the reader goes back to reading.
const (
	// HeartbeatInterval is how often gorun and every agent write a
	// heartbeat on the channel between them.
	HeartbeatInterval = time.Second

	// HeartbeatTimeout is how long gorun waits for a byte from an agent
	// before it holds the host lost: three heartbeats.
	HeartbeatTimeout = 3 * HeartbeatInterval

	// AgentHeartbeatTimeout is how long an agent waits for a byte from
	// gorun before it stops the host's ranks (the dead-man switch): twice
	// gorun's wait. gorun notices a cut first and says which host; the
	// agent's longer wait keeps a gorun that the machine did not run for a
	// few seconds (a 2-core test machine running 256 ranks, a loaded login
	// node) from losing its remote ranks while the job was well: an agent
	// stopped 64 ranks so in one test run. A cut-off host is still clean
	// about 3 s after gorun has ended the job.
	AgentHeartbeatTimeout = 2 * HeartbeatTimeout

	// StartHeartbeatTimeout replaces HeartbeatTimeout (and twice it
	// AgentHeartbeatTimeout) while a host's ranks start: from the job's
	// start on the host until every rank of it has returned from Init,
	// for at most startGraceMax. A wide job's start (gorun shipped to
	// every host, the servers forming their mesh of TLS routes, the
	// ranks' processes) kept a 2-core machine running 16 namespace hosts
	// so busy that a host's beats came more than 3 s apart, and one
	// running 64 more than 10 s apart. A host cut off while it starts is
	// named after as long a silence as ssh's own keepalive allows.
	StartHeartbeatTimeout = 30 * time.Second

	// startGraceMax bounds the start's longer silence: a host whose ranks
	// never call Init is held to HeartbeatTimeout after it.
	startGraceMax = 2 * time.Minute
)

// silenceLimit is how long one side waits for the other before it holds
// it lost: long, while the host's ranks start (joined not yet true, and
// less than startGraceMax after since), then short.
func silenceLimit(short, long time.Duration, joined func() bool, since time.Time) func() time.Duration {
	return func() time.Duration {
		if joined() || time.Since(since) > startGraceMax {
			return short
		}
		return long
	}
}

// frameBeat is a heartbeat, either way: an empty frame (see
// HeartbeatInterval).
const frameBeat = 'B'

// liveness is what one side's reader of the agent channel has seen: when a
// byte last came, and whether it is busy handing a frame on (and so reads
// nothing).
type liveness struct {
	last atomic.Int64 // Unix ns: a byte came, or the reader went back to reading
	busy atomic.Bool
}

func newLiveness() *liveness {
	l := &liveness{}
	l.touch()
	return l
}

func (l *liveness) touch() { l.last.Store(time.Now().UnixNano()) }

// handling says the reader is handing a frame on: the silence does not
// count until reading.
func (l *liveness) handling() { l.busy.Store(true) }

// reading says the reader reads again: the silence counts from now.
func (l *liveness) reading() {
	l.touch()
	l.busy.Store(false)
}

// silent is how long the reader has waited for a byte in vain (0 while it
// is handing a frame on).
func (l *liveness) silent(now time.Time) time.Duration {
	if l.busy.Load() {
		return 0
	}
	return now.Sub(time.Unix(0, l.last.Load()))
}

// watch calls lost, and returns, once the reader has waited limit() for a
// byte in vain; it returns without calling it once stop is closed.
func (l *liveness) watch(limit func() time.Duration, stop <-chan struct{}, lost func()) {
	t := time.NewTimer(min(limit(), HeartbeatInterval))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s, d := l.silent(time.Now()), limit()
		if s >= d {
			lost()
			return
		}
		t.Reset(min(d-s, HeartbeatInterval))
	}
}

// liveReader is r that tells l of every byte it reads.
type liveReader struct {
	r io.Reader
	l *liveness
}

func (lr liveReader) Read(p []byte) (int, error) {
	n, err := lr.r.Read(p)
	if n > 0 {
		lr.l.touch()
	}
	return n, err
}

// beat writes a heartbeat on fw every HeartbeatInterval, until a write
// fails or stop is closed.
func beat(fw *frameWriter, stop <-chan struct{}) {
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if fw.write(frameBeat) != nil {
			return
		}
	}
}
