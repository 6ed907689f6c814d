package launcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sshStartsPerHost bounds the ssh logins in flight to one host: sshd drops
// unauthenticated connections beyond its MaxStartups (10 by default).
const sshStartsPerHost = 8

// rankScript is the end of the script a remote rank's session runs (see
// SSHOptions), after the lines that set its environment, "$@" (the program
// and its arguments), wdir (required directory), cwd (tried, else home),
// feed (1 for the rank that gets gorun's stdin) and ticks (the grace in
// tenths of a second). The script's own stderr is /dev/null (the shell's
// job messages stay out of the rank's); the program's is fd 4, the session's.
// The watcher subshell (w) never dies in the middle of a sleep, so nothing
// of the script outlives it: in stop it ignores SIGTERM and ends when the
// rank has; the poller (feed=1) ends by itself once the rank has.
const rankScript = `h=${HOSTNAME:-$(uname -n)}
fin() { printf '\036gorun-exit %d %d\n' $1 $2; exit $1; }
exec 4>&2 2>/dev/null
if [ -n "$wdir" ]; then cd "$wdir" || { echo "gorun: cannot change to directory $wdir on $h" >&4; fin 126 0; }
elif [ -n "$cwd" ]; then cd "$cwd" || cd; fi
if [ ! -x "$1" ] || [ -d "$1" ]; then echo "gorun: $1: no such executable on $h" >&4; fin 127 0; fi
if sleep 0.01; then d=0.1; else d=1; ticks=$(( (ticks + 9) / 10 )); fi
printf '\036gorun-start\n'
exec 3<&0
if command -v setsid >/dev/null; then s=setsid; else s=; fi
if [ "$feed" = 1 ]; then $s "$@" <&3 2>&4 3<&- 4>&- & else $s "$@" </dev/null 2>&4 3<&- 4>&- & fi
p=$!
if [ -n "$s" ]; then g=-$p; else g=$p; fi
stop() {
  trap '' TERM
  kill -TERM $g $p; i=0
  while kill -0 $p && [ $i -lt $ticks ]; do sleep $d; i=$((i+1)); done
  kill -KILL $g $p
}
if [ "$feed" = 1 ]; then
  ( while kill -0 $p && kill -0 $PPID; do sleep $d; done; if kill -0 $p; then stop; fi ) </dev/null >/dev/null 4>&- &
else
  ( while read -r _; do :; done; stop ) <&3 >/dev/null 4>&- &
fi
w=$!
exec 3<&-
wait $p; c=$?
if [ "$feed" != 1 ]; then kill $w; fi
wait $w
kill -KILL $g
fin $c $p
`

// sshSpawner starts the ranks placed on one remote host, each through an ssh
// session of its own, whose stdout and stderr are the rank's.
type sshSpawner struct {
	rm   *remote
	host Host
	sem  chan struct{} // ssh logins in flight

	mu      sync.Mutex
	running map[int]*sshRank // until its ssh has ended
	stopSig syscall.Signal   // the strongest stop so far; 0 if none
}

var _ spawner = (*sshSpawner)(nil)

// sshRank is the ssh session of one running rank.
type sshRank struct {
	pid   int       // the local ssh process (its process group)
	stdin io.Closer // closing it tells the remote script to stop the rank
	feed  bool      // it carries gorun's stdin (so EOF is not a stop)
}

func newSSHSpawner(rm *remote, h Host) *sshSpawner {
	return &sshSpawner{rm: rm, host: h, sem: make(chan struct{}, sshStartsPerHost), running: map[int]*sshRank{}}
}

func (s *sshSpawner) start(ctx context.Context, spec *spawnSpec, exits chan<- rankExit) {
	name := s.host.String()
	for i, p := range spec.Procs {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || s.stopping() {
			notStarted(spec.Procs[i:], name, exits)
			return
		}
		if err := s.startRank(spec, p, exits); err != nil {
			<-s.sem
			exits <- rankExit{Rank: p.Rank, Host: name, Err: fmt.Errorf("could not start ssh: %w", err)}
			notStarted(spec.Procs[i+1:], name, exits)
			return
		}
	}
}

func (s *sshSpawner) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopSig != 0
}

// script is the shell script that starts rank p on the remote host.
func (s *sshSpawner) script(spec *spawnSpec, p Proc, feed bool) string {
	var b strings.Builder
	env := append(append([]string(nil), spec.Env...), spec.Job.ContractEnv(p, len(spec.Plan.Procs), s.rm.natsURL)...)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shQuote(v))
	}
	b.WriteString("set --")
	for _, a := range append([]string{s.rm.program(s.host, spec.Path)}, spec.Args...) {
		b.WriteString(" " + shQuote(a))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "wdir=%s\ncwd=%s\n", shQuote(spec.WorkDir), shQuote(s.rm.cwd))
	f := 0
	if feed {
		f = 1
	}
	ticks := int(s.rm.grace / (100 * time.Millisecond))
	fmt.Fprintf(&b, "feed=%d\nticks=%d\n", f, max(ticks, 1))
	b.WriteString(rankScript)
	b.WriteString(".\n")
	return b.String()
}

// startRank starts rank p's ssh session, its output forwarding, its stdin
// and its reaper. The login slot taken in start is given back once the
// remote script has started (or the session ended).
func (s *sshSpawner) startRank(spec *spawnSpec, p Proc, exits chan<- rankExit) error {
	cmd := s.rm.opts.command(s.host)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	outR, outW, errR, errW, err := outputPipes()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	feed := p.Rank == 0 && spec.Stdin != nil && !isDevNull(spec.Stdin)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return err
	}
	script := s.script(spec, p, feed)
	sr := newStubReader(outR)
	gate := &stderrGate{src: errR, sr: sr, decided: make(chan struct{})}
	spec.Out.forward(p.Rank, sr, false)
	spec.Out.forward(p.Rank, gate, true)
	go func() {
		<-sr.started
		<-s.sem
	}()
	go func() {
		// A pipe write does not wait for the remote side; if ssh ends
		// first, the write fails and the reaper reports why.
		if _, err := io.WriteString(stdin, script); err != nil {
			return
		}
		if feed {
			io.Copy(stdin, spec.Stdin)
			stdin.Close()
		}
	}()

	pid := cmd.Process.Pid
	r := &sshRank{pid: pid, stdin: stdin, feed: feed}
	s.mu.Lock()
	s.running[p.Rank] = r
	sig := s.stopSig
	s.mu.Unlock()
	if sig != 0 {
		s.signal(r, sig) // stop came while this rank started
	}

	go func() {
		werr := cmd.Wait()
		s.mu.Lock()
		delete(s.running, p.Rank)
		s.mu.Unlock()
		stdin.Close()
		syscall.Kill(-pid, syscall.SIGKILL) // anything ssh started (a ProxyCommand)
		x := waitResult(p.Rank, s.host.String(), 0, werr)
		select { // the exit marker comes last on stdout
		case <-sr.done:
		case <-time.After(2 * time.Second):
		}
		select { // what ssh said, if it never got to start the rank
		case <-gate.decided:
		case <-time.After(2 * time.Second):
		}
		if code, rpid, ok := sr.exit(); ok {
			// The remote script saw the rank end: its status is the rank's.
			x.Code, x.Pid, x.Signal, x.Err = code, rpid, 0, nil
		} else if !sr.sawStart() && x.Err == nil {
			why := lastLine(gate.failure())
			if why == "" {
				why = fmt.Sprintf("ssh exited with status %d", x.Code)
			}
			x.Code, x.Signal = ExitFailure, 0
			x.Err = fmt.Errorf("cannot log in with ssh (%s): %s", s.host.Source, why)
		} else if x.Err == nil {
			how := "ended"
			if x.Signal != 0 {
				how = "was killed by " + signalName(x.Signal)
			} else if x.Code != 0 {
				how = "exited with status " + strconv.Itoa(x.Code)
			}
			x.Err = fmt.Errorf("lost its ssh session (ssh %s before the rank ended)", how)
			if x.Code == 0 {
				x.Code = ExitFailure
			}
			x.Signal = 0
		}
		exits <- x
	}()
	return nil
}

// stop stops every running rank: SIGTERM asks the remote script to stop
// its rank (by closing the session's stdin, or for the rank fed with
// gorun's stdin by ending the session); SIGKILL ends every session at once,
// and the remote scripts kill their ranks.
func (s *sshSpawner) stop(kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	s.mu.Lock()
	if s.stopSig != syscall.SIGKILL {
		s.stopSig = sig
	}
	var rs []*sshRank
	for _, r := range s.running {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	for _, r := range rs {
		s.signal(r, sig)
	}
}

func (s *sshSpawner) signal(r *sshRank, sig syscall.Signal) {
	switch {
	case sig == syscall.SIGTERM && !r.feed:
		r.stdin.Close()
	default:
		syscall.Kill(-r.pid, sig)
	}
}

// stderrGate is a rank's stderr as it comes from ssh. Until the remote
// script has started it holds what comes; if ssh ends without starting the
// script (it could not connect or log in), that text is the error gorun
// reports, once, instead of a line on every rank's stderr.
type stderrGate struct {
	src     io.ReadCloser
	sr      *stubReader
	decided chan struct{} // closed once it passes stderr on, or has read ssh's failure
	once    bool          // Read's own: the decision is made
	fail    string        // ssh's stderr when the script never ran
}

func (g *stderrGate) Read(p []byte) (int, error) {
	if !g.once {
		g.once = true
		<-g.sr.started
		if _, _, exited := g.sr.exit(); !g.sr.sawStart() && !exited {
			b, _ := io.ReadAll(io.LimitReader(g.src, 64<<10))
			g.fail = string(b)
			close(g.decided)
			return 0, io.EOF
		}
		close(g.decided)
	}
	return g.src.Read(p)
}

// failure is what ssh said when it could not start the script; call it
// after decided is closed.
func (g *stderrGate) failure() string {
	select {
	case <-g.decided:
		return g.fail
	default:
		return ""
	}
}

// Close closes the ssh pipe.
func (g *stderrGate) Close() error { return g.src.Close() }

// stubReader is a rank's stdout as it comes from ssh, without the remote
// script's markers: the start line (started is closed when it has been
// read, or at EOF) and the exit line at the very end (exit returns it).
type stubReader struct {
	src       io.ReadCloser
	started   chan struct{} // closed once the start marker is read, or at EOF
	done      chan struct{} // closed at EOF or Close
	startOnce sync.Once
	doneOnce  sync.Once

	buf     []byte
	pend    []byte // read from src, not yet passed on
	out     []byte // ready to pass on
	begun   bool   // Read has decided about the start marker
	marker  bool   // the start marker was there (read after started is closed)
	eof     bool
	mu      sync.Mutex
	code    int
	pid     int
	exitSet bool
}

func newStubReader(src io.ReadCloser) *stubReader {
	return &stubReader{src: src, started: make(chan struct{}), done: make(chan struct{}), buf: make([]byte, 32<<10)}
}

func (r *stubReader) markStarted() { r.startOnce.Do(func() { close(r.started) }) }
func (r *stubReader) markDone()    { r.doneOnce.Do(func() { close(r.done) }) }

// sawStart reports whether the remote script started; call it after
// started is closed.
func (r *stubReader) sawStart() bool {
	select {
	case <-r.started:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.marker
	default:
		return false
	}
}

// exit returns the status and remote pid the script reported, if it did.
func (r *stubReader) exit() (code, pid int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.code, r.pid, r.exitSet
}

// Read passes on the rank's output. It holds back a short tail that starts
// with the marker byte until it knows whether it is the exit marker.
func (r *stubReader) Read(p []byte) (int, error) {
	for {
		if len(r.out) > 0 {
			n := copy(p, r.out)
			r.out = r.out[n:]
			return n, nil
		}
		if r.eof {
			return 0, io.EOF
		}
		n, err := r.src.Read(r.buf)
		r.pend = append(r.pend, r.buf[:n]...)
		if !r.begun {
			i := bytes.Index(r.pend, []byte(startMarker))
			if i < 0 && err == nil {
				continue // output before the script starts (a login banner) waits
			}
			r.begun = true
			if i >= 0 {
				r.mu.Lock()
				r.marker = true
				r.mu.Unlock()
				r.pend = append(r.pend[:i:i], r.pend[i+len(startMarker):]...)
			}
			r.markStarted()
		}
		if err != nil {
			r.eof = true
			r.takeExit()
			r.out, r.pend = r.pend, nil
			r.markStarted()
			r.markDone()
			continue
		}
		// Hold back what may be, or may become, the exit marker at the end.
		keep := 0
		if i := bytes.LastIndexByte(r.pend, exitMarker[0]); i >= 0 && len(r.pend)-i < 64 {
			tail := r.pend[i:]
			nl := bytes.IndexByte(tail, '\n')
			if nl < 0 || (nl == len(tail)-1 && bytes.HasPrefix(tail, []byte(exitMarker))) {
				keep = len(tail)
			}
		}
		r.out = append(r.out[:0], r.pend[:len(r.pend)-keep]...)
		r.pend = append(r.pend[:0], r.pend[len(r.pend)-keep:]...)
	}
}

// takeExit removes the exit marker from the end of pend and records it.
func (r *stubReader) takeExit() {
	i := bytes.LastIndex(r.pend, []byte(exitMarker))
	if i < 0 || r.pend[len(r.pend)-1] != '\n' {
		return
	}
	f := strings.Fields(string(r.pend[i+len(exitMarker):]))
	if len(f) != 2 {
		return
	}
	code, err1 := strconv.Atoi(f[0])
	pid, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return
	}
	r.pend = r.pend[:i]
	r.mu.Lock()
	r.code, r.pid, r.exitSet = code, pid, true
	r.mu.Unlock()
}

// Close closes the ssh pipe.
func (r *stubReader) Close() error {
	err := r.src.Close()
	r.markStarted()
	r.markDone()
	return err
}

// isDevNull says whether r is the null device (gorun's stdin in a batch
// job): a rank then reads EOF without being fed.
func isDevNull(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}
