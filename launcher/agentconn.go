package launcher

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Lines the bootstrap script says before the agent's frames start.
const (
	agentHave   = "gorun-agent have"
	agentNeed   = "gorun-agent need "
	agentCopied = "gorun-agent copied"
)

// self is this gorun binary: its path, size and hash (which names its copy
// in a remote host's cache).
var self struct {
	once       sync.Once
	path, hash string
	size       int64
	err        error
}

func selfBinary() (path, hash string, size int64, err error) {
	self.once.Do(func() {
		p, err := os.Executable()
		if err != nil {
			self.err = err
			return
		}
		f, err := os.Open(p)
		if err != nil {
			self.err = err
			return
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			self.err = err
			return
		}
		self.path, self.hash, self.size = p, hex.EncodeToString(h.Sum(nil)), n
	})
	return self.path, self.hash, self.size, self.err
}

// bootstrap is the script (see remoteReader) that starts the agent on a
// remote host: the cached copy of this very gorun build if the host has
// it (in the user's cache, named by the binary's hash, private to the
// user), else it says the host's platform and, if gorun sends it, installs
// the binary it is sent there first. Its only output before the agent's
// frames are the gorun-agent lines.
func bootstrap(hash string, size int64) string {
	n := strconv.FormatInt(size, 10)
	return `c=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/gorun; d="$c/` + hash + `"; p="$d/gorun"
if [ -x "$p" ]; then echo ` + agentHave + `; exec "$p" ` + AgentArg + `; fi
echo "` + agentNeed + `$(uname -sm)"
IFS= read -r a || exit 3
[ "$a" = send ] || exit 3
umask 077; mkdir -p "$d" && t=$(mktemp "$d/.gorun.XXXXXXXX") || exit 3
if head -c ` + n + ` >"$t" && [ "$(wc -c <"$t")" -eq ` + n + ` ] && chmod 700 "$t" && mv -f "$t" "$p"; then :; else rm -f "$t"; exit 3; fi
echo ` + agentCopied + `
exec "$p" ` + AgentArg + `
`
}

// goPlatform is the GOOS/GOARCH of a `uname -sm` answer, "" if unknown.
func goPlatform(uname string) string {
	f := strings.Fields(uname)
	if len(f) != 2 {
		return ""
	}
	osys := strings.ToLower(f[0])
	arch := map[string]string{
		"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"i386": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm",
		"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64",
	}[f[1]]
	if arch == "" {
		return osys + "/" + f[1]
	}
	return osys + "/" + arch
}

// agentConn is gorun's end of one remote host's agent: its ssh session
// (startAgent), or the connection it made when a Slurm step started it
// (startSlurmAgents).
type agentConn struct {
	host   Host
	via    string // what carries the agent protocol, for messages: "ssh session", "connection"
	in     io.WriteCloser
	fw     *frameWriter
	br     *bufio.Reader
	hello  agentHello
	errs   *tailBuffer // ssh's (or srun's) stderr
	ended  chan struct{}
	werr   error  // how the session ended, after ended
	killFn func() // ends the session at once
	once   sync.Once

	live    *liveness     // what br has heard from the agent (heartbeat.go)
	noBeat  atomic.Bool   // gorun ended the session: nothing came for silence
	silence time.Duration // set before noBeat

	login time.Duration // from the bootstrap sent to its first answer: ssh's login

	claimMu sync.Mutex
	claimed bool // the host's spawner reads the session: it reports the session's end
}

// claim says that the host's spawner now reads the session, and reports
// its end; watchEarly stops watching.
func (a *agentConn) claim() {
	a.claimMu.Lock()
	a.claimed = true
	a.claimMu.Unlock()
}

// watchEarly calls abort, naming the host, if the agent's session ends
// before the host's spawner claims it: a host whose agent dies while
// others still start is named at once, not when the job would start.
func (a *agentConn) watchEarly(abort func(error)) {
	go func() {
		<-a.ended
		if err := a.endedEarly(); err != nil {
			abort(err)
		}
	}()
}

// endedEarly is, once the session has ended, the fault that names the
// host if the spawner had not claimed it; nil if it had.
func (a *agentConn) endedEarly() error {
	a.claimMu.Lock()
	claimed := a.claimed
	a.claimMu.Unlock()
	if claimed {
		return nil
	}
	return jobFault(fmt.Sprintf("host %s: its agent ended before the job started (%s)%s", a.host, a.sessionEnd(), stderrNote(a.errs.String())))
}

// sessionEnd says how the agent's session ended, once it has.
func (a *agentConn) sessionEnd() string {
	if a.via != "ssh session" {
		if a.werr != nil {
			return "it failed (" + a.werr.Error() + ")"
		}
		return "it ended"
	}
	x := waitResult(0, a.host.String(), 0, a.werr)
	switch {
	case x.Signal != 0:
		return "ssh was killed by " + signalName(x.Signal)
	case x.Code != 0:
		return "ssh exited with status " + strconv.Itoa(x.Code)
	}
	return "ssh ended"
}

// startAgent logs in to h once and starts its agent, shipping this gorun
// binary first when h lacks this build. It returns once the agent said
// hello.
func startAgent(ctx context.Context, o *SSHOptions, h Host, logf func(string, ...any)) (*agentConn, error) {
	path, hash, size, err := selfBinary()
	if err != nil {
		return nil, fmt.Errorf("cannot read gorun's own binary: %w", err)
	}
	cmd := o.command(h)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("cannot run %s: %w", o.program(), err)
	}
	live := newLiveness()
	a := &agentConn{host: h, via: "ssh session", in: in, fw: &frameWriter{w: in}, br: bufio.NewReaderSize(liveReader{outR, live}, 64<<10),
		errs: &tailBuffer{max: 64 << 10}, ended: make(chan struct{}), live: live}
	a.killFn = func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	go func() { io.Copy(a.errs, errR); errR.Close() }()
	go func() { a.werr = cmd.Wait(); close(a.ended) }()

	fail := func(err error) (*agentConn, error) {
		a.kill()
		<-a.ended
		return nil, err
	}
	type result struct {
		a   *agentConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := a.handshake(path, hash, size, logf)
		done <- result{a, err}
	}()
	timer := time.NewTimer(o.timeout() + 5*time.Second + time.Duration(size/10e6)*time.Second)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return fail(r.err)
		}
		go beat(a.fw, a.ended)
		return r.a, nil
	case <-timer.C:
		return fail(fmt.Errorf("no answer from the host within %v", o.timeout()+5*time.Second))
	case <-ctx.Done():
		return fail(context.Cause(ctx))
	}
}

// handshake runs the bootstrap and reads the agent's hello.
func (a *agentConn) handshake(path, hash string, size int64, logf func(string, ...any)) (*agentConn, error) {
	if _, err := io.WriteString(a.in, bootstrap(hash, size)+".\n"); err != nil {
		return nil, a.loginError(err)
	}
	t0 := time.Now()
	for {
		line, err := a.br.ReadString('\n')
		if err != nil {
			return nil, a.loginError(err)
		}
		line = strings.TrimRight(line, "\r\n")
		if a.login == 0 && (line == agentHave || strings.HasPrefix(line, agentNeed)) {
			a.login = time.Since(t0)
		}
		if line == agentHave {
			logf("host %s: this gorun is there already (its cache, %s), nothing copied", a.host, hash[:12])
			break
		}
		if uname, ok := strings.CutPrefix(line, agentNeed); ok {
			want := runtime.GOOS + "/" + runtime.GOARCH
			if got := goPlatform(uname); got != want {
				io.WriteString(a.in, "no\n")
				return nil, fmt.Errorf("host %s is %s (%s), this gorun is built for %s: install a gorun for %s there, or start the job from a machine of its platform",
					a.host, uname, got, want, got)
			}
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			_, err = io.WriteString(a.in, "send\n")
			if err == nil {
				_, err = io.Copy(a.in, f)
			}
			f.Close()
			if err != nil {
				return nil, a.loginError(err)
			}
			continue
		}
		if line == agentCopied {
			logf("host %s: copied gorun there (%.1f MB, %v) into its cache as %s", a.host, float64(size)/1e6, time.Since(t0).Round(time.Millisecond), hash[:12])
			break
		}
		// anything else (a login banner on stdout) is skipped
	}
	kind, b, err := readFrame(a.br, nil)
	if err != nil {
		return nil, a.loginError(err)
	}
	if kind != frameHello || json.Unmarshal(b, &a.hello) != nil {
		return nil, fmt.Errorf("host %s: unexpected answer from the agent", a.host)
	}
	return a, nil
}

// loginError is why the session ended before the agent said hello: what
// ssh said, if anything.
func (a *agentConn) loginError(err error) error {
	select {
	case <-a.ended:
	case <-time.After(2 * time.Second):
	}
	time.Sleep(10 * time.Millisecond) // the last of stderr
	if why := lastLine(a.errs.String()); why != "" {
		return fmt.Errorf("cannot log in with ssh (%s): %s", a.host.Source, why)
	}
	return fmt.Errorf("cannot log in with ssh (%s): the session ended (%v)", a.host.Source, err)
}

// kill ends the session (and so the agent, which stops its ranks).
func (a *agentConn) kill() { a.killFn() }

// close tells the agent the job is over (EOF), and waits up to d for its
// session to end.
func (a *agentConn) close(d time.Duration) {
	a.claim() // its end is no news
	a.once.Do(func() {
		a.in.Close()
		select {
		case <-a.ended:
		case <-time.After(d):
			a.kill()
			<-a.ended
		}
	})
}
