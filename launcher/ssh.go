package launcher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SSHOptions say how gorun starts ranks on other hosts. It runs the system's
// ssh client, so the user's ~/.ssh/config, keys and agent apply.
//
// How a remote host's ranks start: gorun logs in once per host, running
//
//	ssh [Opts] -T -o BatchMode=yes -o ConnectTimeout=N ... host 'exec /bin/sh -c "<reader>"'
//
// where <reader> is a fixed one-line loop that reads a small shell script
// from its standard input (up to a line "."), then runs it. That script
// (bootstrap) starts the host's agent: this gorun binary from the user's
// cache on that host, after copying it there through the same session if
// the host lacks this build (and its platform matches). From then on gorun
// and the agent talk in frames over the session's standard input and
// output (RunAgent): the job (with the secret and the host's TLS key), the
// ranks' output, their ends, stop requests, rank 0's input. No command
// line on any host holds the secret or anything job-specific. The agent
// stops its ranks when gorun says so, and by itself when its standard
// input ends (gorun stopped the job, died, or the connection is lost) or
// when nothing came from gorun for AgentHeartbeatTimeout (the connection is
// cut without an end: a link down); gorun ends the job, naming the host,
// when nothing came from the agent for as long.
type SSHOptions struct {
	// Program is the ssh client; "" means "ssh" from PATH.
	Program string

	// Opts are extra ssh options given before gorun's own (so they win),
	// e.g. {"-i", "key", "-o", "Port=2222"}: gorun's --ssh-opts, or the
	// GORUN_SSH_OPTS variable.
	Opts []string

	// ConnectTimeout bounds ssh's connection to a host (its ConnectTimeout
	// option) and gorun's check of each host before the job starts; 0
	// means 10 s.
	ConnectTimeout time.Duration

	// Copy copies the program to every remote host (into a private
	// directory under /tmp, through two more logins per host) and removes
	// it when the job ends; without it the program must be at the same
	// path on every host.
	Copy bool

	// Advertise is the host name or address the other hosts' servers
	// reach gorun's embedded NATS server at, for the job's cluster routes.
	// "" means the address of this machine's interface that routes to the
	// first remote host.
	Advertise string
}

// defaultSSHTimeout is SSHOptions.ConnectTimeout's default.
const defaultSSHTimeout = 10 * time.Second

// Marker lines between gorun and the script on a remote host.
const (
	probeLine   = "gorun-probe"
	copyLine    = "gorun-copy"
	startMarker = "\x1egorun-start\n" // first on a rank's stdout: logged in and starting
	exitMarker  = "\x1egorun-exit "   // last on a rank's stdout: "<code> <pid>\n"
)

// remoteReader is the command line every remote session runs: it reads a
// script from stdin up to a line ".", then runs it, leaving the rest of
// stdin to the script; a script cut short (no ".") is not run at all. It
// holds nothing job-specific, and survives csh, fish and POSIX login shells
// alike (no "!", newline or single quote inside).
const remoteReader = `exec /bin/sh -c 'n=$(printf "\n_"); n=${n%_}; s=; while IFS= read -r l; do if [ "$l" = . ]; then eval "$s"; exit; fi; s="$s$l$n"; done; exit 1'`

// ParseSSHOpts splits an --ssh-opts (or GORUN_SSH_OPTS) value into
// arguments as a POSIX shell would: at unquoted blanks, with '...' and
// "..." quoting and backslash escapes.
func ParseSSHOpts(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == '\\':
			if i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			}
			inArg = true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(c)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("ssh options %q: unterminated %c quote", s, quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// shQuote quotes s for a POSIX shell as one word. Newlines become "$n" (the
// reader's newline variable), so a script line never holds a raw newline
// from a value and never reads as the end marker.
func shQuote(s string) string {
	s = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	return strings.ReplaceAll(s, "\n", `'"$n"'`)
}

// remote is the multi-host part of one job: the ssh options and what gorun
// learned about, and left on, each remote host.
type remote struct {
	opts    SSHOptions
	grace   time.Duration
	natsURL string      // with --nats: the bus as remote ranks reach it
	cluster *jobCluster // with the embedded servers: how each host's server joins the job's cluster
	cwd     string      // gorun's directory, tried first on a remote host
	agents  map[int]*agentConn
	step    *slurmStep // with LauncherSlurm: the srun step of the agents

	mu      sync.Mutex
	progs   map[string]string // host -> the program's path there (with Copy)
	holders []holder          // with Copy: one session per host that removes the copy at EOF
}

// holder is a session that removes a copied program once its stdin closes.
type holder struct {
	cmd   *exec.Cmd
	stdin io.Closer
}

// sshArgs is the ssh command line for host h running command.
func (o *SSHOptions) sshArgs(h Host, command string) []string {
	secs := int((o.timeout() + time.Second - 1) / time.Second)
	args := append([]string(nil), o.Opts...)
	args = append(args,
		"-T", "-x",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout="+strconv.Itoa(secs),
		"-o", "ServerAliveInterval=10",
		"-o", "ServerAliveCountMax=3",
		h.String(), command)
	return args
}

func (o *SSHOptions) timeout() time.Duration {
	if o.ConnectTimeout > 0 {
		return o.ConnectTimeout
	}
	return defaultSSHTimeout
}

func (o *SSHOptions) program() string {
	if o.Program != "" {
		return o.Program
	}
	return "ssh"
}

// command is an ssh process for h running the remote reader, in a process
// group of its own (the terminal's Ctrl-C reaches gorun only) that dies
// with gorun.
func (o *SSHOptions) command(h Host) *exec.Cmd {
	cmd := exec.Command(o.program(), o.sshArgs(h, remoteReader)...)
	cmd.SysProcAttr = rankProcAttr()
	return cmd
}

// runScript runs script on h and returns its stdout; after the script it
// sends body (if not nil) on stdin. The whole exchange must end within the
// connect timeout plus extra.
func (o *SSHOptions) runScript(ctx context.Context, h Host, script string, body io.Reader, extra time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout()+extra)
	defer cancel()
	cmd := o.command(h)
	var stdin io.Reader = strings.NewReader(script + ".\n")
	if body != nil {
		stdin = io.MultiReader(stdin, body)
	}
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("cannot run %s: %w", o.program(), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", fmt.Errorf("no answer within %v", o.timeout()+extra)
		}
		return "", ctx.Err()
	}
	if err != nil {
		msg := lastLine(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.String(), errors.New(msg)
	}
	return stdout.String(), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// forEachHost runs fn for every index in idx, at most 32 at once, and
// returns the first error in idx's order.
func forEachHost(idx []int, fn func(i int) error) error {
	errs := make([]error, len(idx))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for k, i := range idx {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[k] = fn(i)
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// prepareHosts readies cfg for a job on cfg.Hosts before the embedded
// server starts and ranks are placed: every host without a slot count gets
// one per core: runtime.NumCPU here; elsewhere, the cores the host's agent
// may use, which prepareHosts starts for it (its one login) and returns,
// by index into cfg.Hosts, for startRemote to use.
func prepareHosts(ctx context.Context, cfg *Config, logf func(string, ...any)) (map[int]*agentConn, error) {
	if len(cfg.Hosts) == 0 {
		return nil, nil
	}
	cfg.Hosts = append([]Host(nil), cfg.Hosts...) // the caller's slice stays as it was
	if cfg.Launcher == LauncherSlurm {
		return nil, prepareSlurm(ctx, cfg, logf)
	}
	var ask []int
	for i, h := range cfg.Hosts {
		if h.IsLocal() {
			if h.Slots == 0 {
				cfg.Hosts[i].Slots = capSlots(runtime.NumCPU(), h.MaxSlots)
			}
			continue
		}
		if h.Slots == 0 {
			ask = append(ask, i)
		}
	}
	agents := map[int]*agentConn{}
	var mu sync.Mutex
	err := forEachHost(ask, func(i int) error {
		h := &cfg.Hosts[i]
		a, err := startAgent(ctx, &cfg.SSH, *h, logf)
		if err != nil {
			return fmt.Errorf("host %s: %w", h, err)
		}
		mu.Lock()
		agents[i] = a
		mu.Unlock()
		if a.hello.CPUs < 1 {
			return fmt.Errorf("%s: host %s: could not count its cores; give slots=N", h.Source, h)
		}
		h.Slots = capSlots(a.hello.CPUs, h.MaxSlots)
		return nil
	})
	if err != nil {
		closeAgents(agents, cfg.SSH.timeout())
		return nil, err
	}
	return agents, nil
}

// closeAgents ends agents (see agentConn.close).
func closeAgents(agents map[int]*agentConn, d time.Duration) {
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() { a.close(d) })
	}
	wg.Wait()
}

func capSlots(n, max int) int {
	if max > 0 && n > max {
		return max
	}
	return n
}

// startRemote readies the remote hosts of plan before their ranks start:
// it copies the program there with Copy, and starts every host's agent
// (one login each). It returns nil when no rank is remote. close undoes
// what it did: it ends the agents (which end whatever is left of their
// ranks) and removes the copies.
func startRemote(ctx context.Context, cfg *Config, plan *Plan, prog string, job jobInfo, pre map[int]*agentConn, logf func(string, ...any)) (*remote, error) {
	used := map[int]bool{}
	for _, p := range plan.Procs {
		used[p.Host] = true
	}
	for i, a := range pre {
		if !used[i] {
			a.close(cfg.SSH.timeout()) // a host the plan gives no rank
		}
	}
	var hosts []int
	for i, h := range plan.Hosts {
		if used[i] && !h.IsLocal() {
			hosts = append(hosts, i)
		}
	}
	if len(hosts) == 0 {
		return nil, nil
	}
	cwd, _ := os.Getwd()
	rm := &remote{opts: cfg.SSH, grace: cfg.StopGrace, cwd: cwd, progs: map[string]string{}}
	if cfg.SSH.Copy && cfg.Launcher != LauncherSlurm {
		t := time.Now()
		err := forEachHost(hosts, func(i int) error { return rm.copyProgram(ctx, plan.Hosts[i], prog) })
		if err != nil {
			rm.close()
			return nil, err
		}
		logf("copied %s to %d hosts in %v", filepath.Base(prog), len(hosts), time.Since(t).Round(time.Millisecond))
	}

	if job.Server == nil {
		rm.natsURL = job.NATSURL
		if loopbackURL(job.NATSURL) {
			rm.close()
			return nil, fmt.Errorf("--nats %s: a loopback address, which ranks on other hosts cannot reach", redactURL(job.NATSURL))
		}
	} else {
		rm.cluster = job.Cluster
	}
	if cfg.Launcher == LauncherSlurm {
		use := map[int]Host{}
		for _, i := range hosts {
			use[i] = plan.Hosts[i]
		}
		var err error
		if rm.agents, rm.step, err = startSlurmAgents(ctx, use, cfg.SSH.Advertise, logf); err != nil {
			rm.close()
			return nil, fmt.Errorf("starting the agents with srun: %w", err)
		}
		return rm, nil
	}
	// One login per host: its agent (shipped there first if it lacks this
	// gorun build).
	t := time.Now()
	var mu sync.Mutex
	rm.agents = map[int]*agentConn{}
	for _, i := range hosts {
		if a := pre[i]; a != nil {
			rm.agents[i] = a
		}
	}
	err := forEachHost(hosts, func(i int) error {
		if rm.agents[i] != nil {
			return nil // started by prepareHosts
		}
		a, err := startAgent(ctx, &cfg.SSH, plan.Hosts[i], logf)
		if err != nil {
			first := 0
			for _, p := range plan.Procs {
				if p.Host == i {
					first = p.Rank
					break
				}
			}
			return rankExitError{rankExit{Rank: first, Host: plan.Hosts[i].String(), Err: err}}
		}
		mu.Lock()
		rm.agents[i] = a
		mu.Unlock()
		return nil
	})
	if err != nil {
		rm.close()
		return nil, err
	}
	logf("agents started on %d hosts in %v", len(hosts), time.Since(t).Round(time.Millisecond))
	return rm, nil
}

// rankExitError is a rank's failure before the job started, as an error
// that reads as gorun reports a rank's end.
type rankExitError struct{ x rankExit }

func (e rankExitError) Error() string { return e.x.String() }

// copyProgram copies prog to a fresh private directory on h, and keeps a
// session open that removes it when gorun closes it or goes away.
func (rm *remote) copyProgram(ctx context.Context, h Host, prog string) error {
	f, err := os.Open(prog)
	if err != nil {
		return fmt.Errorf("--copy: %w", err)
	}
	defer f.Close()
	script := `d=$(mktemp -d "${TMPDIR:-/tmp}/gorun.XXXXXXXX") || exit 1` + "\n" +
		`echo ` + copyLine + ` "$d"` + "\n" +
		`p="$d"/` + shQuote(filepath.Base(prog)) + "\n" +
		`cat >"$p" && chmod 700 "$p" || { rm -rf "$d"; exit 1; }` + "\n"
	// Allow a slow link a second per 10 MB on top of the connect timeout.
	var extra time.Duration = 5 * time.Second
	if fi, err := f.Stat(); err == nil {
		extra += time.Duration(fi.Size()/10e6) * time.Second
	}
	out, err := rm.opts.runScript(ctx, h, script, f, extra)
	dir := ""
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, copyLine+" "); ok {
			dir = v
		}
	}
	if dir != "" {
		rm.holdDir(h, dir) // removes it, also after a failed copy
	}
	if err != nil {
		return fmt.Errorf("%s: host %s: --copy: %w", h.Source, h, err)
	}
	if dir == "" {
		return fmt.Errorf("%s: host %s: --copy: unexpected answer %q", h.Source, h, strings.TrimSpace(out))
	}
	rm.mu.Lock()
	rm.progs[h.String()] = dir + "/" + filepath.Base(prog)
	rm.mu.Unlock()
	return nil
}

// holdDir starts a session on h that removes dir once its stdin reaches EOF:
// when close closes it, or when gorun dies and ssh with it.
func (rm *remote) holdDir(h Host, dir string) {
	cmd := rm.opts.command(h)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return
	}
	if err := cmd.Start(); err != nil {
		return
	}
	script := "d=" + shQuote(dir) + "\n" +
		`trap "" HUP INT TERM` + "\n" +
		`while read -r _; do :; done; rm -rf "$d"` + "\n.\n"
	io.WriteString(stdin, script)
	rm.mu.Lock()
	rm.holders = append(rm.holders, holder{cmd, stdin})
	rm.mu.Unlock()
}

// close ends what startRemote left on the hosts: it waits (up to the
// connect timeout) until every copied program has been removed.
func (rm *remote) close() {
	if rm == nil {
		return
	}
	closeAgents(rm.agents, rm.opts.timeout())
	lost := false
	for _, a := range rm.agents {
		lost = lost || a.noBeat.Load()
	}
	if lost {
		// A node cut off keeps its task, and so srun, from ending.
		rm.step.kill()
	} else {
		rm.step.close(rm.opts.timeout())
	}
	rm.mu.Lock()
	holders := rm.holders
	rm.holders = nil
	rm.mu.Unlock()
	deadline := time.Now().Add(rm.opts.timeout())
	for _, h := range holders {
		h.stdin.Close()
	}
	for _, h := range holders {
		cmd := h.cmd
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Until(deadline)):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

// program is the program's path on h.
func (rm *remote) program(h Host, local string) string {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if p, ok := rm.progs[h.String()]; ok {
		return p
	}
	return local
}

// routeAddr is the address of this machine's interface that routes to h
// (as ssh would reach it, after ~/.ssh/config's HostName), or this
// machine's host name if that cannot be told.
func routeAddr(ctx context.Context, o *SSHOptions, h Host) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return addrToward(ctx, sshHostName(ctx, o, h))
}

// sshHostName is the host name ssh would connect to for h, after
// ~/.ssh/config's HostName (ssh -G prints the configuration ssh would use,
// without connecting); h's own name if that cannot be told.
func sshHostName(ctx context.Context, o *SSHOptions, h Host) string {
	args := append(append([]string(nil), o.Opts...), "-G", h.String())
	if out, err := exec.CommandContext(ctx, o.program(), args...).Output(); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "hostname "); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return h.Name
}

// addrToward is the address of this machine's interface that routes to
// the host name (or address) name, or this machine's host name if that
// cannot be told.
func addrToward(ctx context.Context, name string) string {
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err == nil && len(addrs) > 0 {
		// A UDP "connection" sends nothing; it only picks the route.
		if c, err := net.Dial("udp", net.JoinHostPort(addrs[0], "22")); err == nil {
			defer c.Close()
			if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
				return a.IP.String()
			}
		}
	}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		return hn
	}
	return "localhost"
}

// loopbackURL says whether a NATS URL list names only loopback hosts.
func loopbackURL(urls string) bool {
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if i := strings.Index(u, "://"); i >= 0 {
			u = u[i+3:]
		}
		if i := strings.LastIndex(u, "@"); i >= 0 {
			u = u[i+1:]
		}
		host := u
		if h, _, err := net.SplitHostPort(u); err == nil {
			host = h
		}
		host = strings.Trim(strings.ToLower(host), "[]")
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}
