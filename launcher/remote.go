package launcher

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

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

	abort func(error) // ends the job's start: an agent died before its ranks started

	mu      sync.Mutex
	progs   map[string]string // host -> the program's path there (with Copy)
	holders []holder          // with Copy: one session per host that removes the copy at EOF
}

// holder is a session that removes a copied program once its stdin closes.
type holder struct {
	cmd   *exec.Cmd
	stdin io.Closer
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
	ask := slotLocal(cfg.Hosts)
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

// slotLocal gives every host of hosts that is this machine and has no
// slot count one slot per core here (at most its max), and returns the
// indexes of the other hosts that have none.
func slotLocal(hosts []Host) (unslotted []int) {
	for i, h := range hosts {
		switch {
		case h.Slots != 0:
		case h.IsLocal():
			hosts[i].Slots = capSlots(runtime.NumCPU(), h.MaxSlots)
		default:
			unslotted = append(unslotted, i)
		}
	}
	return unslotted
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
func startRemote(ctx context.Context, cfg *Config, plan *Plan, prog string, job jobInfo, pre map[int]*agentConn, abort func(error), logf func(string, ...any)) (*remote, error) {
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
	rm := &remote{opts: cfg.SSH, grace: cfg.StopGrace, cwd: cwd, progs: map[string]string{}, abort: abort}
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
		rm.cluster.setMembers(plan.Hosts, hosts)
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
	if err := rm.startAgents(ctx, cfg, plan, hosts, pre, logf); err != nil {
		rm.close()
		return nil, err
	}
	return rm, nil
}

// startAgents starts the agents of the hosts (indexes into plan.Hosts)
// that prepareHosts has not started (pre), over ssh, in parallel. A host
// whose agent does not start fails as its first rank.
func (rm *remote) startAgents(ctx context.Context, cfg *Config, plan *Plan, hosts []int, pre map[int]*agentConn, logf func(string, ...any)) error {
	t := time.Now()
	var mu sync.Mutex
	rm.agents = map[int]*agentConn{}
	for _, i := range hosts {
		if a := pre[i]; a != nil {
			rm.agents[i] = a
			a.watchEarly(rm.abort)
		}
	}
	err := forEachHost(hosts, func(i int) error {
		if rm.agents[i] != nil {
			return nil // started by prepareHosts
		}
		a, err := startAgent(ctx, &cfg.SSH, plan.Hosts[i], logf)
		if err != nil && ctx.Err() != nil {
			return context.Cause(ctx) // another host's agent ended the start
		}
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
		a.watchEarly(rm.abort)
		mu.Lock()
		rm.agents[i] = a
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	logLogins(rm.agents, logf)
	logf("agents started on %d hosts in %v", len(hosts), time.Since(t).Round(time.Millisecond))
	return nil
}

// logLogins says how long the slowest of the agents' ssh logins took.
func logLogins(agents map[int]*agentConn, logf func(string, ...any)) {
	var slow *agentConn
	for _, a := range agents {
		if slow == nil || a.login > slow.login {
			slow = a
		}
	}
	if slow != nil {
		logf("logins: %d hosts, one ssh login each, the slowest %v (host %s)", len(agents), slow.login.Round(time.Millisecond), slow.host)
	}
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
