package launcher

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/contract"
)

// rankControl is gorun's (or an agent's) end of a rank's control socket
// (contract.Control): the rank's reports come in on it, and the questions
// of the hang report go out on it.
type rankControl struct {
	f       *os.File
	rep     rankReport    // what the rank reported; read once done is closed
	answers chan []byte   // state answers, the latest one
	traced  chan struct{} // the rank has given its trace, as asked
	inited  atomic.Bool   // the rank reported Init: it answers questions
	onInit  func()        // called once when the rank reports Init; nil for none
	done    chan struct{}
	askMu   sync.Mutex
	// pidOf answers the rank's contract.QueryPid: the pid of a world rank
	// this host started and has not reaped, else 0. nil: none is known.
	pidOf func(rank int) int
}

// newControl makes a control socket pair: gorun's end, and the rank's, to
// be passed as its descriptor 3 (and closed here once it has started).
func newControl() (*rankControl, *os.File, error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	syscall.SetNonblock(fds[0], true) // pollable: reads and writes take deadlines
	c := &rankControl{f: os.NewFile(uintptr(fds[0]), "control"), answers: make(chan []byte, 1), traced: make(chan struct{}, 1), done: make(chan struct{})}
	return c, os.NewFile(uintptr(fds[1]), "control-rank"), nil
}

// read reads the rank's lines until EOF: reports into c.rep (a few short
// lines at most: a rank has only a few things to say; anything else is
// ignored) and the answers to ask.
func (c *rankControl) read() {
	defer close(c.done)
	sc := bufio.NewScanner(c.f)
	sc.Buffer(make([]byte, 4096), contract.MaxStateLine)
	traceBytes := 0
	for n := 0; sc.Scan(); {
		line := sc.Bytes()
		if ans, ok := bytes.CutPrefix(line, []byte(contract.QueryState+" ")); ok {
			ans = bytes.Clone(ans)
			select {
			case <-c.answers: // an answer nobody waited for
			default:
			}
			c.answers <- ans
			continue
		}
		if r, ok := contract.ParsePidQuery(string(line)); ok {
			c.answerPid(r)
			continue
		}
		if st, ok := bytes.CutPrefix(line, []byte(contract.Stats+" ")); ok && c.rep.Stats == nil && json.Valid(st) {
			c.rep.Stats = bytes.Clone(st)
			continue
		}
		if ch, ok := bytes.CutPrefix(line, []byte(contract.TraceLine+" ")); ok && json.Valid(ch) {
			if traceBytes+len(ch) > maxTraceBytes {
				c.rep.TraceCut = true
			} else {
				traceBytes += len(ch)
				c.rep.Trace = append(c.rep.Trace, bytes.Clone(ch))
			}
			continue
		}
		if string(line) == contract.TraceDone {
			select {
			case c.traced <- struct{}{}:
			default:
			}
			continue
		}
		if r, ok := bytes.CutPrefix(line, []byte(contract.ReportLost+" ")); ok {
			if len(r) <= 12 { // a rank's lost peers do not count against its few reports
				c.rep.add(string(line))
			}
			continue
		}
		if n < 16 && len(line) <= 64 {
			c.rep.add(string(line))
			if c.rep.Inited && !c.inited.Swap(true) && c.onInit != nil {
				c.onInit()
			}
			n++
		}
	}
	io.Copy(io.Discard, c.f)
}

// answerPid answers the rank's question which process this host started
// as world rank r (contract.QueryPid): the rank checks the pid another rank
// announced before it copies that rank's memory. A rank that does not read
// its answers only delays its own reports, for a second at most.
func (c *rankControl) answerPid(r int) {
	pid := 0
	if c.pidOf != nil {
		pid = c.pidOf(r)
	}
	c.f.SetWriteDeadline(time.Now().Add(stateTimeout))
	c.f.Write([]byte(contract.PidAnswer(r, pid) + "\n"))
}

// tellPids gives every rank this host runs, on its control socket and
// unasked, the pid of each rank this host started (contract.PidAnswer
// lines), once all have started: a rank checks the pids its peers on this
// host announced (mpi's vouch, at Init) against these, with no question
// and answer through gorun (a round trip that cost every rank's Init 1-2
// ms on a busy host). A rank asks about what it was not told, as before.
func (h *hostRanks) tellPids() {
	h.mu.Lock()
	if len(h.running) < 2 {
		h.mu.Unlock()
		return // no peer on this host to check
	}
	var b []byte
	for r, pid := range h.running {
		b = append(append(b, contract.PidAnswer(r, pid)...), '\n')
	}
	ctls := make([]*rankControl, 0, len(h.ctl))
	for _, c := range h.ctl {
		ctls = append(ctls, c)
	}
	h.mu.Unlock()
	for _, c := range ctls {
		c.f.SetWriteDeadline(time.Now().Add(stateTimeout))
		c.f.Write(b)
	}
}

// pidOf is the pid of world rank r if this host started it and has not
// reaped it yet, else 0.
func (h *hostRanks) pidOf(r int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running[r]
}

// ask asks the rank for its state and waits for the answer until
// deadline; nil if none came, or it made no sense.
func (c *rankControl) ask(deadline time.Time) *blocked.State {
	c.askMu.Lock()
	defer c.askMu.Unlock()
	select {
	case <-c.answers: // a late answer to an earlier question
	default:
	}
	c.f.SetWriteDeadline(deadline)
	if _, err := c.f.Write([]byte(contract.QueryState + "\n")); err != nil {
		return nil
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case b := <-c.answers:
		var st blocked.State
		if json.Unmarshal(b, &st) != nil {
			return nil
		}
		return &st
	case <-c.done:
	case <-t.C:
	}
	return nil
}

// dumpTrace asks the rank for its trace so far (it is about to be
// stopped) and waits until it has given it, or deadline.
func (c *rankControl) dumpTrace(deadline time.Time) {
	c.askMu.Lock()
	defer c.askMu.Unlock()
	select {
	case <-c.traced:
	default:
	}
	c.f.SetWriteDeadline(deadline)
	if _, err := c.f.Write([]byte(contract.QueryTrace + "\n")); err != nil {
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-c.traced:
	case <-c.done:
	case <-t.C:
	}
}

// traceTimeout bounds how long gorun waits for the ranks' traces before it
// stops a job.
const traceTimeout = 2 * time.Second

// dumpTraces asks every running rank of the host for its trace so far,
// at once, and waits for them (at most traceTimeout).
func (h *hostRanks) dumpTraces() {
	h.mu.Lock()
	ctls := make([]*rankControl, 0, len(h.ctl))
	for _, c := range h.ctl {
		ctls = append(ctls, c)
	}
	h.mu.Unlock()
	deadline := time.Now().Add(traceTimeout)
	var wg sync.WaitGroup
	for _, c := range ctls {
		wg.Go(func() { c.dumpTrace(deadline) })
	}
	wg.Wait()
}

// maxTraceBytes bounds the trace kept of one rank (its exit, with them,
// must fit an agent's frame).
const maxTraceBytes = 32 << 20

// stateTimeout is how long the hang report waits for a rank's answer.
const stateTimeout = time.Second

// states asks every running rank of the host for its state, at once;
// the ranks that did not answer in stateTimeout are left out. A rank that
// has not reported Init is not asked (a program that does not use mpi
// never answers): its state is that it is not through Init.
func (h *hostRanks) states() map[int]*blocked.State {
	h.mu.Lock()
	ctls := make(map[int]*rankControl, len(h.ctl))
	for r, c := range h.ctl {
		ctls[r] = c
	}
	h.mu.Unlock()
	deadline := time.Now().Add(stateTimeout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := make(map[int]*blocked.State, len(ctls))
	for r, c := range ctls {
		if !c.inited.Load() {
			out[r] = &blocked.State{}
			continue
		}
		wg.Go(func() {
			if st := c.ask(deadline); st != nil {
				mu.Lock()
				out[r] = st
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}
