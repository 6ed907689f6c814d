package launcher

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// agentSpawner runs the ranks of one remote host through its agent.
type agentSpawner struct {
	rm   *remote
	a    *agentConn
	host Host
	idx  int

	joined atomic.Bool // every rank of the host returned from Init

	mu       sync.Mutex
	reported map[int]bool
	started  bool
	stopSig  byte                   // 0 none, 1 TERM, 2 KILL, before start
	replies  map[uint32]chan []byte // the agent's answers to request, by id
	nextAsk  uint32
	pings    int   // clock pings answered
	bestRTT  int64 // the shortest round trip of a ping, ns
	offset   int64 // the host's clock minus gorun's, from that ping
	lo, hi   int64 // the offsets every ping allows: it lies in [lo, hi] if the clocks did not drift
}

// clockPings is how many pings measure a host's clock, keeping the one
// with the shortest round trip.
const clockPings = 5

// ping asks the agent for its clock.
func (s *agentSpawner) ping() {
	s.a.fw.write(frameClock, binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
}

// clock is how far the host's clock is ahead of gorun's, as measured.
func (s *agentSpawner) clock() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clockOffset(s.lo, s.hi, s.offset)
}

// clockOffset chooses a host's clock offset from what the pings allow,
// [lo, hi], and the best single ping's estimate: 0 when the pings allow
// it (hosts that share a clock, as one machine's namespaces do, must
// show no skew: an estimate off by half a busy round trip put a
// message's receipt before its send), else the middle of what they allow,
// else (the bounds cross: a clock stepped) the best ping's.
func clockOffset(lo, hi, best int64) int64 {
	switch {
	case lo > hi:
		return best
	case lo <= 0 && 0 <= hi:
		return 0
	}
	return lo + (hi-lo)/2
}

// states asks the agent for its ranks' states (see hostRanks.states).
func (s *agentSpawner) states() map[int]*blocked.State {
	var m map[int]*blocked.State
	if b, ok := s.request(frameAsk, stateTimeout+time.Second); !ok || json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// dumpTraces asks the agent for its ranks' traces so far (see
// hostRanks.dumpTraces), and waits until they have given them.
func (s *agentSpawner) dumpTraces() { s.request(frameDump, traceTimeout+time.Second) }

// request sends the agent a question of kind (a frame of a 4-byte id) and
// returns its answer (what follows the id), or false once timeout passes
// (the agent waits less than that for its ranks) or the job has not
// started on the host.
func (s *agentSpawner) request(kind byte, timeout time.Duration) ([]byte, bool) {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return nil, false
	}
	s.nextAsk++
	id := s.nextAsk
	ch := make(chan []byte, 1)
	if s.replies == nil {
		s.replies = map[uint32]chan []byte{}
	}
	s.replies[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.replies, id)
		s.mu.Unlock()
	}()
	if s.a.fw.write(kind, binary.BigEndian.AppendUint32(nil, id)) != nil {
		return nil, false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case b := <-ch:
		return b, true
	case <-t.C:
		return nil, false
	}
}

var _ spawner = (*agentSpawner)(nil)

func (s *agentSpawner) start(ctx context.Context, spec *spawnSpec, exits chan<- rankExit) {
	name := s.host.String()
	if ctx.Err() != nil {
		notStarted(spec.Procs, name, exits)
		return
	}
	j := agentJob{
		Job:   spec.hostJob(name),
		Grace: s.rm.grace,
	}
	// As the agent's host sees it: the program where --copy put it, the
	// bus at the address that host reaches.
	j.Job.Path, j.Job.Cwd, j.Job.NATSURL, j.Job.Remote = s.rm.program(s.host, spec.Path), s.rm.cwd, s.rm.natsURL, true
	if s.rm.cluster != nil {
		sp, err := s.rm.cluster.specFor(s.idx, s.host, s.a.hello)
		if err != nil {
			exits <- rankExit{Rank: spec.Procs[0].Rank, Host: name, Err: err}
			notStarted(spec.Procs[1:], name, exits)
			return
		}
		j.Server = sp
		s.rm.cluster.started()
	}
	s.mu.Lock()
	s.reported = map[int]bool{}
	s.started = true
	stop := s.stopSig
	s.mu.Unlock()
	if err := s.a.fw.json(frameJob, j); err != nil {
		// the reader below reports the lost session
	}
	if stop != 0 {
		s.stop(stop == 2)
	}
	s.a.claim()
	go s.read(spec, exits)
	if spec.Job.Trace > 0 {
		s.ping()
	}
	if spec.Stdin != nil && !isDevNull(spec.Stdin) && spec.Procs[0].Rank == 0 {
		go func() {
			// Rank 0's input goes once its agent has been told go: the
			// agent hands it to the rank (and waits while it does not
			// read), and a rank that has not started reads nothing.
			if c := s.rm.cluster; c != nil {
				select {
				case <-c.formed:
				case <-ctx.Done():
					return
				}
			}
			buf := make([]byte, 32<<10)
			for {
				n, err := spec.Stdin.Read(buf)
				if n > 0 && s.a.fw.write(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					s.a.fw.write(frameStdin)
					return
				}
			}
		}()
	}
}

// read handles the agent's frames until its session ends, then reports
// the ranks it never reported as lost.
func (s *agentSpawner) read(spec *spawnSpec, exits chan<- rankExit) {
	pipes := map[[2]int]*io.PipeWriter{}
	pipe := func(rank, kind int) *io.PipeWriter {
		k := [2]int{rank, kind}
		if w, ok := pipes[k]; ok {
			return w
		}
		r, w := io.Pipe()
		pipes[k] = w
		spec.Out.forward(rank, r, kind == 2)
		return w
	}
	var failure string
	var buf []byte
	// A host whose agent says nothing for HeartbeatTimeout (not even its
	// heartbeat) is lost: its session ends, and its ranks with it, below.
	// The time this reader spends handing a frame on (a rank's output to
	// a standard output that does not drain) does not count.
	live := s.a.live
	watchDone := make(chan struct{})
	live.reading()
	limit := silenceLimit(HeartbeatTimeout, StartHeartbeatTimeout, s.joined.Load, time.Now())
	go live.watch(limit, watchDone, func() {
		s.a.silence = limit()
		s.a.noBeat.Store(true)
		s.a.kill()
	})
	for {
		kind, b, err := readFrame(s.a.br, buf)
		if err != nil {
			break
		}
		buf = b
		live.handling()
		switch kind {
		case frameOutput:
			if len(b) >= 5 {
				pipe(int(binary.BigEndian.Uint32(b)), int(b[4])).Write(b[5:])
			}
		case frameExit:
			var e agentExit
			if json.Unmarshal(b, &e) != nil {
				break
			}
			for k := range 2 {
				if w, ok := pipes[[2]int{e.Rank, k + 1}]; ok {
					w.Close()
				}
			}
			if s.report(e.Rank) {
				exits <- exitFromWire(e, s.host.String())
			}
		case frameStates, frameDumped:
			s.onReply(b)
		case frameTime:
			s.onTime(b)
		case frameRouted, frameListen, frameJoined, frameJoinedMesh:
			s.onStart(spec, kind, b)
		case frameFail:
			failure = string(b)
		case frameFault:
			spec.Fail(jobFault(b))
		}
		live.reading()
	}
	close(watchDone)
	for _, w := range pipes {
		w.Close()
	}
	s.lost(spec, failure, exits)
}

// onStart takes the agent's news of the job's start on its host: its
// server's routes (frameRouted), where it listens for them (frameListen),
// its ranks all past Init (frameJoined).
func (s *agentSpawner) onStart(spec *spawnSpec, kind byte, b []byte) {
	switch kind {
	case frameRouted:
		var lacks []string
		if json.Unmarshal(b, &lacks) == nil && spec.Routed != nil {
			spec.Routed(serverName(s.idx), lacks)
		}
	case frameListen:
		if s.rm.cluster != nil {
			s.rm.cluster.listens(serverName(s.idx), string(b), s.a.fw)
		}
	case frameJoinedMesh:
		if s.rm.cluster != nil {
			s.rm.cluster.meshed(serverName(s.idx))
		}
	case frameJoined:
		s.joined.Store(true)
		if spec.Joined != nil {
			spec.Joined()
		}
	}
}

// report marks rank's end reported, and reports whether it was not yet.
func (s *agentSpawner) report(rank int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	dup := s.reported[rank]
	s.reported[rank] = true
	return !dup
}

// onReply hands a frameStates or frameDumped to the request waiting for
// it.
func (s *agentSpawner) onReply(b []byte) {
	if len(b) < 4 {
		return
	}
	s.mu.Lock()
	ch := s.replies[binary.BigEndian.Uint32(b)]
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- bytes.Clone(b[4:]): // b is the reader's buffer
		default:
		}
	}
}

// onTime takes the agent's answer to a clock ping, and pings again until
// it has clockPings answers.
func (s *agentSpawner) onTime(b []byte) {
	if len(b) != 16 {
		return
	}
	t0, t1, t2 := int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:])), time.Now().UnixNano()
	s.mu.Lock()
	if rtt := t2 - t0; s.pings == 0 || rtt < s.bestRTT {
		s.bestRTT, s.offset = rtt, t1-(t0+t2)/2
	}
	// The agent read its clock between t0 and t2 on gorun's.
	if lo, hi := t1-t2, t1-t0; s.pings == 0 {
		s.lo, s.hi = lo, hi
	} else {
		s.lo, s.hi = max(s.lo, lo), min(s.hi, hi)
	}
	s.pings++
	more := s.pings < clockPings
	s.mu.Unlock()
	if more {
		s.ping()
	}
}

// lost reports, once the agent's session has ended, every rank of the
// host whose end the agent did not report: not started (the agent's
// failure, said for the first), lost with a host that sent no heartbeat,
// or with the session.
func (s *agentSpawner) lost(spec *spawnSpec, failure string, exits chan<- rankExit) {
	select {
	case <-s.a.ended:
	case <-time.After(2 * time.Second):
		s.a.kill()
		<-s.a.ended
	}
	name := s.host.String()
	first := true
	for _, p := range spec.Procs {
		if !s.report(p.Rank) {
			continue
		}
		x := rankExit{Rank: p.Rank, Host: name, Code: ExitFailure}
		switch {
		case failure != "" && first:
			x.Err = fmt.Errorf("could not start: the agent on host %s: %s", name, failure)
		case failure != "":
			x.NotStarted = true
		case s.a.noBeat.Load():
			x.Err = fmt.Errorf("is lost: host %s: no heartbeat from its agent for %v (the host, or the network to it, is down)", name, s.a.silence)
			if spec.HostLost != nil {
				spec.HostLost(s.a.hello.Addr, s.host.Name)
			}
		default:
			x.Err = fmt.Errorf("lost its %s to the agent on host %s (%s before the rank ended)%s", s.a.via, name, s.a.sessionEnd(), stderrNote(s.a.errs.String()))
		}
		first = false
		exits <- x
	}
}

// sessionEnd says how the agent's session ended.

// stderrNote is ssh's last word, if it said one, for a message.
func stderrNote(s string) string {
	if l := lastLine(s); l != "" {
		return ": " + l
	}
	return ""
}

// stop asks the agent to stop its ranks: SIGTERM, or SIGKILL with every
// descendant when kill is set.
func (s *agentSpawner) stop(kill bool) {
	s.mu.Lock()
	if !s.started {
		if kill {
			s.stopSig = 2
		} else if s.stopSig == 0 {
			s.stopSig = 1
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	b := byte(0)
	if kill {
		b = 1
	}
	if s.a.fw.write(frameStop, []byte{b}) != nil && kill {
		s.a.kill() // the channel is broken: end the session, the agent stops its ranks
	}
}
