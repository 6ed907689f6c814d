package launcher

import (
	"context"
	"errors"
	"fmt"
	"github.com/gorun-hpc/gorun/internal/contract"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// outputDrain bounds the wait for the ranks' output once every rank has
// ended (only a process that escaped its rank's process group can hold a
// pipe open that long).
const outputDrain = time.Second

// Run runs prog (see PrepareProgram) with args as a job of cfg.N ranks, and
// waits until every rank has ended and its output has been written out.
//
// It builds Go sources first, starts the embedded NATS server (unless
// cfg.NATSURL names one), places the ranks (cfg.Hosts, or all on this
// machine) and starts them with the launch contract's environment.
//
// It returns nil when every rank exits 0. Otherwise it returns an
// *ExitError whose one-line message says why and whose Code is the exit
// status for gorun (see ExitCode): when a rank fails (non-zero exit, killed
// by a signal, could not start), the first failure names the rank, host,
// pid and how it ended, and every other rank is stopped (SIGTERM to its
// process group, SIGKILL after cfg.StopGrace). The job is stopped the same
// way when cfg.Timeout passes (ExitTimeout), on SIGINT or SIGTERM with
// cfg.Signals (128+signal), and when ctx is done (ExitFailure). No rank
// process outlives Run.
func Run(ctx context.Context, cfg Config, prog string, args ...string) error {
	if err := cfg.Validate(); err != nil {
		return &ExitError{Code: ExitUsage, Msg: err.Error(), Err: err}
	}
	cfg.fillDefaults()
	r := &runner{cfg: cfg, out: newOutput(cfg.Stdout, cfg.Stderr, cfg.TagOutput), t0: time.Now()}
	return r.run(ctx, prog, args)
}

// fillDefaults replaces unset fields with DefaultConfig's values (Stdin
// stays nil: no input).
func (cfg *Config) fillDefaults() {
	def := DefaultConfig()
	if cfg.MapBy == "" {
		cfg.MapBy = def.MapBy
	}
	if cfg.NATSHost == "" {
		cfg.NATSHost = def.NATSHost
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = def.ConnectTimeout
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = def.StopGrace
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
}

// runner is one Run.
type runner struct {
	cfg Config
	out *output
	t0  time.Time
}

// logf prints a line of -v output.
func (r *runner) logf(format string, args ...any) {
	if r.cfg.Verbose {
		r.out.printf(format, args...)
	}
}

// signalCause is the cause of a job stopped by a signal to gorun.
type signalCause struct{ sig syscall.Signal }

func (s signalCause) Error() string { return "interrupted by " + signalName(s.sig) }

// faultGrace is how long a jobFault waits before it stops the job.
const faultGrace = 500 * time.Millisecond

// jobFault is why a job cannot go on that no rank's end tells: a route
// between two of its servers closed (see routes.go).
type jobFault string

func (f jobFault) Error() string { return string(f) }

// stopped is the ExitError for a job stopped by cause before or while its
// ranks ran.
func stopped(cause error, what string) *ExitError {
	var sc signalCause
	if errors.As(cause, &sc) {
		return &ExitError{Code: ExitSignalBase + int(sc.sig), Msg: sc.Error() + what, Err: cause}
	}
	var f jobFault
	if errors.As(cause, &f) {
		return &ExitError{Code: ExitFailure, Msg: f.Error() + what, Err: cause}
	}
	return &ExitError{Code: ExitFailure, Msg: "job cancelled: " + cause.Error() + what, Err: cause}
}

func (r *runner) run(ctx context.Context, prog string, args []string) error {
	// Orphans of local ranks become gorun's children, so that sweep ends them.
	becomeSubreaper()
	cfg := &r.cfg
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var sigCh, usr1 chan os.Signal
	if cfg.Signals {
		sigCh = make(chan os.Signal, 4)
		signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigCh)
		usr1 = make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
	}
	// Until the ranks start, a signal cancels whatever gorun is doing.
	launched, preDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(preDone)
		select {
		case s := <-sigCh:
			cancel(signalCause{s.(syscall.Signal)})
		case <-launched:
		}
	}()
	launch := sync.OnceFunc(func() { close(launched); <-preDone })
	defer launch()
	// fault stops the job for a reason no rank's end tells (a route that
	// closed), after faultGrace: a host's agent or ranks that died take
	// its routes with them, and their end, which names them, should be
	// what gorun reports.
	fault := func(err error) { time.AfterFunc(faultGrace, func() { cancel(err) }) }
	// Closed once every rank has ended: the routes' watch is over then.
	ranksEnded := make(chan struct{})
	endRanks := sync.OnceFunc(func() { close(ranksEnded) })
	defer endRanks()

	fail := func(err error) error {
		if jobCtx.Err() != nil {
			return stopped(context.Cause(jobCtx), "")
		}
		return &ExitError{Code: ExitFailure, Msg: err.Error(), Err: err}
	}

	// The program, built once if it is Go source.
	t := time.Now()
	p, err := PrepareProgram(jobCtx, prog, cfg.Stderr)
	if err != nil {
		return fail(err)
	}
	defer p.Remove()
	if p.Built {
		r.logf("built %s in %v", prog, time.Since(t).Round(time.Millisecond))
	}
	// Remote hosts: slot counts asked over ssh, the bus opened to them (ssh.go).
	pre, err := prepareHosts(jobCtx, cfg, r.logf)
	if err != nil {
		return fail(err)
	}
	defer closeAgents(pre, cfg.SSH.timeout()) // those startRemote did not take over

	// The bus: a server here, and (with remote hosts) one on every other
	// host of the job, in one cluster whose seed is this one.
	job := jobInfo{ID: uuid.NewString(), SharedMemory: !cfg.NoSharedMemory}
	var traceFile *os.File
	if cfg.Trace != "" {
		job.Trace = cfg.TraceSize
		// Made now: a file that cannot be written is said before the job runs.
		if traceFile, err = os.Create(cfg.Trace); err != nil {
			return fail(fmt.Errorf("--trace: %w", err))
		}
		defer traceFile.Close()
	}
	if cfg.NATSURL == "" {
		users, seeds, err := jobKeys(job.ID, cfg.N)
		if err != nil {
			return fail(err)
		}
		spec := &serverSpec{Name: "gorun", Host: cfg.NATSHost, JobID: job.ID, Size: cfg.N, Users: users, Verbose: cfg.Verbose, Logf: r.out.printf}
		var remotes []Host
		for _, h := range cfg.Hosts {
			if !h.IsLocal() {
				remotes = append(remotes, h)
			}
		}
		if len(remotes) > 0 {
			c, cs, err := clusterFor(jobCtx, cfg, job.ID, users, remotes)
			if err != nil {
				return fail(err)
			}
			spec, job.Cluster = cs, c
		}
		srv, err := startServer(spec)
		if err != nil {
			return fail(err)
		}
		defer srv.Shutdown()
		job.NATSURL, job.Server = srv.URL(), srv
		job.Creds = make(map[int]string, len(seeds))
		for r, seed := range seeds {
			job.Creds[r] = seed
		}
		r.logf("embedded NATS server listening on %s:%d", cfg.NATSHost, srv.Port())
		if job.Cluster != nil {
			job.Cluster.setSeed(spec.Cluster.Advertise, srv.RoutePort())
			r.logf("the job's cluster: routes (TLS) to this host at %s", job.Cluster.seed)
			// Until the ranks have ended, a route that closes ends the job.
			host, _ := os.Hostname()
			go srv.watchRoutes(host, ranksEnded, func(err error) { fault(jobFault(err.Error())) })
		}
	} else {
		bus, err := newExternalBus(cfg)
		if err != nil {
			return fail(err)
		}
		if urlToken(cfg.NATSURL) != "" {
			r.out.printf("warning: --nats: a token in the URL shows on gorun's command line to every user of this machine; set GORUN_NATS_TOKEN instead (ranks get it that way, never in their URL)")
		}
		expires := time.Now().Add(mintLifetime)
		if cfg.Timeout > 0 {
			expires = time.Now().Add(cfg.Timeout + 10*time.Minute)
		}
		auth, err := bus.checkOptions(job.ID, expires)
		if err != nil {
			return fail(fmt.Errorf("--nats %s: %w", redactURL(cfg.NATSURL), err))
		}
		url := stripUserInfo(cfg.NATSURL)
		cctx, ccancel := context.WithTimeout(jobCtx, cfg.ConnectTimeout)
		err = checkExternal(cctx, url, cfg.ConnectTimeout, auth)
		ccancel()
		if err != nil {
			return fail(fmt.Errorf("--nats %s: cannot connect: %w", redactURL(cfg.NATSURL), err))
		}
		if job.Creds, err = bus.rankCreds(job.ID, cfg.N, expires); err != nil {
			return fail(fmt.Errorf("--nats-account-key: %w", err))
		}
		job.NATSURL, job.TLS = url, bus.tls
		if bus.isolated() {
			r.logf("each rank connects as a user of its own, minted for this job (valid until %s)", expires.Format(time.RFC3339))
		} else {
			job.Token = bus.token
			r.out.printf("warning: --nats: the job is not isolated from other users of this server: every rank connects with the same credentials; give --nats-account-key to mint users for each job and rank")
		}
		r.logf("using the NATS server at %s", redactURL(cfg.NATSURL))
	}
	r.logf("job %s", job.ID)

	// Where each rank runs, and who starts it.
	plan, err := r.plan()
	if err != nil {
		return fail(err)
	}
	r.logPaths(plan)
	r.warnUnused(jobCtx, plan)
	// Remote hosts checked, the program copied with --copy (ssh.go).
	rm, err := startRemote(jobCtx, cfg, &plan, p.Path, job, pre, r.logf)
	if err != nil {
		return fail(err)
	}
	defer rm.close()
	env := resolveEnv(cfg.Env)
	var specs []*spawnSpec
	var spawners []spawner
	for i, h := range plan.Hosts {
		var procs []Proc
		for _, pr := range plan.Procs {
			if pr.Host == i {
				procs = append(procs, pr)
			}
		}
		if len(procs) == 0 {
			continue
		}
		sp, err := newSpawner(h, i, rm)
		if err != nil {
			return fail(err)
		}
		spec := &spawnSpec{
			Plan: &plan, Host: i, Procs: procs,
			Path: p.Path, Args: args, WorkDir: cfg.WorkDir,
			Env: env, Job: job, Out: r.out,
			Fail: fault,
		}
		if procs[0].Rank == 0 {
			spec.Stdin = cfg.Stdin
		}
		specs = append(specs, spec)
		spawners = append(spawners, sp)
	}
	if jobCtx.Err() != nil {
		return fail(jobCtx.Err())
	}

	// Start every host's ranks, then watch them.
	exits := make(chan rankExit, cfg.N)
	startCtx, stopStarting := context.WithCancel(jobCtx)
	defer stopStarting()
	var starting sync.WaitGroup
	for k, sp := range spawners {
		starting.Go(func() { sp.start(startCtx, specs[k], exits) })
	}
	launch() // from here on, the loop below reads sigCh
	r.logf("starting %d ranks of %s", cfg.N, p.Path)

	hw := &hangWatch{r: r, spawners: spawners, ended: map[int]rankExit{}, spawnerOf: make([]int, cfg.N)}
	for k, spec := range specs {
		for _, pr := range spec.Procs {
			hw.spawnerOf[pr.Rank] = k
		}
	}
	if len(plan.Hosts) > 1 {
		hw.hostOf = make([]string, cfg.N)
		for _, pr := range plan.Procs {
			hw.hostOf[pr.Rank] = plan.Hosts[pr.Host].String()
		}
	}
	res := r.watch(jobCtx, spawners, exits, sigCh, usr1, hw)
	if cfg.Stats {
		hw.printStats()
	}
	if traceFile != nil {
		err := hw.writeTrace(traceFile, r.t0)
		if cerr := traceFile.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			r.out.printf("--trace %s: %v", cfg.Trace, err)
		} else {
			r.logf("wrote the job's trace to %s", cfg.Trace)
		}
	}
	endRanks()
	stopStarting()
	starting.Wait()
	if !r.out.wait(outputDrain) {
		r.logf("output of some rank still open %v after it ended; closed", outputDrain)
	}
	r.logf("job ended after %v", time.Since(r.t0).Round(time.Millisecond))
	return res
}

// plan places the ranks: on cfg.Hosts, or all on this machine (where more
// ranks than CPUs is allowed).
func (r *runner) plan() (Plan, error) {
	cfg := &r.cfg
	hosts := append([]Host(nil), cfg.Hosts...)
	oversub := cfg.Oversubscribe
	if len(hosts) == 0 {
		hosts = []Host{{Name: "localhost", Source: "local"}}
		oversub = true
	}
	for i := range hosts {
		if hosts[i].Slots == 0 && hosts[i].IsLocal() {
			hosts[i].Slots = runtime.NumCPU()
		}
	}
	plan, err := MakePlan(hosts, cfg.N, cfg.MapBy, oversub)
	if err != nil {
		return Plan{}, err
	}
	if len(cfg.Hosts) == 0 {
		if cfg.N > hosts[0].Slots {
			r.logf("%d ranks on %d CPUs: more ranks than CPUs (oversubscribed), allowed on this machine", cfg.N, hosts[0].Slots)
		} else {
			r.logf("%d ranks on %d CPUs", cfg.N, hosts[0].Slots)
		}
	}
	return plan, nil
}

// logPaths says (with -v) how the ranks of each host talk to each other:
// through the host's shared memory, or through the bus.
func (r *runner) logPaths(plan Plan) {
	if !r.cfg.Verbose {
		return
	}
	n := make([]int, len(plan.Hosts))
	for _, p := range plan.Procs {
		n[p.Host]++
	}
	for i, h := range plan.Hosts {
		switch {
		case n[i] < 2:
		case r.cfg.NoSharedMemory:
			r.logf("host %s: its %d ranks talk through the bus (--shm=false)", h, n[i])
		default:
			r.logf("host %s: its %d ranks talk through shared memory, falling back to the bus where a segment cannot be made", h, n[i])
		}
	}
}

// newSpawner returns the spawner for the ranks placed on h (host i of the
// plan): local, or through its agent (spawn_agent.go) with rm from
// startRemote.
func newSpawner(h Host, i int, rm *remote) (spawner, error) {
	if h.IsLocal() {
		return newLocalSpawner(), nil
	}
	if rm == nil || rm.agents[i] == nil {
		return nil, fmt.Errorf("%s: host %s: not prepared for remote ranks", h.Source, h)
	}
	return &agentSpawner{rm: rm, a: rm.agents[i], host: h, idx: i}, nil
}

// watch waits until every rank has ended, stopping the job at its first
// failure, on a signal, at the timeout or when ctx is done; it returns the
// job's result.
func (r *runner) watch(ctx context.Context, spawners []spawner, exits <-chan rankExit, sigCh, usr1 <-chan os.Signal, hw *hangWatch) error {
	cfg := &r.cfg
	if cfg.HangReport > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go hw.watchHangs(cfg.HangReport, stop)
	}
	stopAll := func(kill bool) {
		for _, sp := range spawners {
			sp.stop(kill)
		}
	}
	var timeoutC, graceC <-chan time.Time
	if cfg.Timeout > 0 {
		t := time.NewTimer(cfg.Timeout)
		defer t.Stop()
		timeoutC = t.C
	}
	var (
		reason  *ExitError // why the job is being stopped; nil while it runs
		first   *rankExit  // the rank whose failure ended the job
		ended   = make(map[int]rankExit)
		done    = ctx.Done()
		running = cfg.N
		// A failure that followed a peer's leave: the job's end waits (at
		// most blameGrace, on blameC) for that peer's own end (see blame).
		suspect *rankExit
		blameC  <-chan time.Time
	)
	beginStop := func(why *ExitError) {
		if reason != nil {
			return
		}
		reason = why
		hw.stop()
		timeoutC, done = nil, nil
		if cfg.Trace != "" && running > 0 {
			// The ranks about to be stopped give their traces first,
			// with the calls they are blocked in.
			var wg sync.WaitGroup
			for _, sp := range spawners {
				wg.Go(sp.dumpTraces)
			}
			wg.Wait()
		}
		if running > 0 {
			r.logf("stopping %d ranks: SIGTERM, SIGKILL after %v", running, cfg.StopGrace)
		}
		stopAll(false)
		t := time.NewTimer(cfg.StopGrace)
		graceC = t.C
	}
	// failed starts the job's end with the failure of root.
	failed := func(root rankExit) {
		first = &root
		suspect, blameC = nil, nil
		beginStop(&ExitError{Code: root.exitCode()})
	}
	for running > 0 {
		select {
		case x := <-exits:
			running--
			if running > 0 && x.Code == 0 && x.Signal == 0 && x.Err == nil && x.Report.Inited && !x.Report.Closed && !x.Report.Aborted {
				// In MPI a rank that leaves while others may still need
				// it fails the job: they would wait for it forever.
				x.Unclosed = true
			}
			ended[x.Rank] = x
			hw.exited(x)
			if x.NotStarted {
				continue
			}
			if cfg.Verbose && reason == nil {
				r.logf("%v", x)
			}
			if reason != nil {
				continue
			}
			if suspect == nil && x.failed() {
				suspect = &x
				blameC = time.After(blameGrace)
			}
			if suspect != nil {
				if root, wait := blame(*suspect, ended, cfg.N); wait < 0 {
					failed(root)
				} else {
					r.logf("%s failed after rank %d left the job: waiting up to %v for rank %d's own end", suspect.who(), wait, blameGrace, wait)
				}
			}
		case <-blameC:
			blameC = nil
			if reason == nil {
				root, _ := blame(*suspect, ended, cfg.N)
				failed(root)
			}
		case s := <-sigCh:
			if reason == nil {
				r.logf("got %v: stopping the job (again to kill it at once)", signalName(s.(syscall.Signal)))
				beginStop(stopped(signalCause{s.(syscall.Signal)}, "; every rank stopped"))
			} else {
				r.logf("got %v again: killing every rank", signalName(s.(syscall.Signal)))
				stopAll(true)
			}
		case <-done:
			beginStop(stopped(context.Cause(ctx), "; every rank stopped"))
		case <-usr1:
			go hw.report("got SIGUSR1 (the job goes on)", true)
		case <-timeoutC:
			hw.report(fmt.Sprintf("the job ran for %v (--timeout)", cfg.Timeout), false)
			beginStop(&ExitError{Code: ExitTimeout, Msg: fmt.Sprintf("job timed out after %v (--timeout); every rank stopped", cfg.Timeout)})
		case <-graceC:
			graceC = nil
			r.logf("grace of %v over: SIGKILL to %d ranks", cfg.StopGrace, running)
			stopAll(true)
		}
	}
	if reason == nil && suspect != nil {
		root, _ := blame(*suspect, ended, cfg.N)
		first, reason = &root, &ExitError{Code: root.exitCode()}
	}
	if reason == nil {
		return nil
	}
	if first == nil {
		return reason
	}
	// A rank failed. Name the rank that called Abort if one did (the others
	// then exit too, maybe before it), as it reported (never as its output
	// says), else the first failure.
	var aborter *rankExit
	for _, x := range ended {
		if x.Report.Aborted && (aborter == nil || x.Rank < aborter.Rank) {
			aborter = &x
		}
	}
	if aborter != nil {
		code := aborter.Report.AbortCode
		status := contract.AbortStatus(code)
		msg := fmt.Sprintf("%s aborted the job with code %d", aborter.who(), code)
		if status != code {
			msg += fmt.Sprintf(" (exit status %d: a code outside 1-255 exits 1)", status)
		}
		return &ExitError{Code: status, Msg: msg}
	}
	r.out.waitRank(first.Rank, outputDrain)
	first.Panicked = r.out.panicked(first.Rank)
	msg := first.String()
	if w := r.out.lastWords(first.Rank); w != "" {
		msg += ": " + w
	}
	return &ExitError{Code: first.exitCode(), Msg: msg, Err: first.Err}
}

// blameGrace is how long a failure that followed a peer's leave waits for
// that peer's own end before gorun names the failure.
const blameGrace = 2 * time.Second

// blame finds the rank whose failure started the job's end, from x, a rank
// that failed, and the ranks ended so far. A rank that saw a peer leave
// (its Report.Lost, which mpi reports on the control socket as soon as it
// knows, so before the rank can fail because of it) failed as a bystander
// when that peer failed too: a panic or an error on rank k runs k's
// deferred Close, whose bye fails the peers blocked on k, and they may
// well exit before k has printed its panic. So blame follows the first
// lost peer of each rank while that peer failed; a peer that left
// cleanly (exit status 0) leaves the blame where it is. It returns the
// rank to name, and wait >= 0 when the answer depends on rank wait, which
// left but has not ended yet (the caller waits blameGrace at most for
// it), else -1. n is the job's size.
func blame(x rankExit, ended map[int]rankExit, n int) (root rankExit, wait int) {
	seen := map[int]bool{x.Rank: true}
	for {
		if len(x.Report.Lost) == 0 {
			return x, -1
		}
		p := x.Report.Lost[0]
		if seen[p] || p < 0 || p >= n {
			return x, -1
		}
		seen[p] = true
		e, ok := ended[p]
		switch {
		case !ok:
			return x, p
		case e.NotStarted || !e.failed():
			return x, -1
		}
		x = e
	}
}
