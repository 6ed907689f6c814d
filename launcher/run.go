package launcher

import (
	"context"
	"errors"
	"fmt"
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

// job is one Run's job as it goes through its phases: the program and the
// hosts made ready (prepare), the bus opened (openBus), the ranks placed
// and their spawners made (place), then started and watched (supervise)
// and reported. Each phase registers what undoes it with onClose.
type job struct {
	ctx    context.Context // ends when the job is stopped
	cancel context.CancelCauseFunc
	args   []string // the program's arguments

	prog      *Program
	pre       map[int]*agentConn // remote hosts' agents, until startRemote takes them over
	info      jobInfo
	traceFile *os.File // --trace's file, made before the job runs
	plan      Plan
	specs     []*spawnSpec // a host's ranks, as its spawner starts them
	spawners  []spawner    // one per host with ranks, as specs

	sigCh, usr1 chan os.Signal
	launch      func() // hands sigCh over from the start-up to supervise
	fault       func(error)
	endRanks    func() // every rank has ended: the routes' watch is over
	ranksEnded  chan struct{}
	closers     []func()
}

// onClose registers f to run when the job is closed, after what was
// registered later.
func (j *job) onClose(f func()) { j.closers = append(j.closers, f) }

// close undoes the phases, the last first.
func (j *job) close() {
	for i := len(j.closers) - 1; i >= 0; i-- {
		j.closers[i]()
	}
}

// fail is the ExitError for a phase that failed with err: the job's stop
// cause if it was stopped meanwhile.
func (j *job) fail(err error) error {
	if j.ctx.Err() != nil {
		return stopped(context.Cause(j.ctx), "")
	}
	return &ExitError{Code: ExitFailure, Msg: err.Error(), Err: err}
}

func (r *runner) run(ctx context.Context, prog string, args []string) error {
	// Orphans of local ranks become gorun's children, so that sweep ends them.
	becomeSubreaper()
	j := r.newJob(ctx, args)
	defer j.close()
	for _, phase := range []func(*job) error{
		func(j *job) error { return r.prepare(j, prog) },
		r.openBus,
		r.place,
	} {
		if err := phase(j); err != nil {
			return j.fail(err)
		}
	}
	if j.ctx.Err() != nil {
		return j.fail(j.ctx.Err())
	}
	return r.supervise(j)
}

// newJob makes the job's context and, with cfg.Signals, its signal
// channels: until the ranks start, a signal cancels whatever gorun is
// doing.
func (r *runner) newJob(ctx context.Context, args []string) *job {
	j := &job{args: args, ranksEnded: make(chan struct{})}
	j.ctx, j.cancel = context.WithCancelCause(ctx)
	j.onClose(func() { j.cancel(nil) })
	if r.cfg.Signals {
		j.sigCh = make(chan os.Signal, 4)
		signal.Notify(j.sigCh, syscall.SIGINT, syscall.SIGTERM)
		j.onClose(func() { signal.Stop(j.sigCh) })
		j.usr1 = make(chan os.Signal, 1)
		signal.Notify(j.usr1, syscall.SIGUSR1)
		j.onClose(func() { signal.Stop(j.usr1) })
	}
	launched, preDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(preDone)
		select {
		case s := <-j.sigCh:
			j.cancel(signalCause{s.(syscall.Signal)})
		case <-launched:
		}
	}()
	j.launch = sync.OnceFunc(func() { close(launched); <-preDone })
	j.onClose(j.launch)
	// fault stops the job for a reason no rank's end tells (a route that
	// closed), after faultGrace: a host's agent or ranks that died take
	// its routes with them, and their end, which names them, should be
	// what gorun reports.
	j.fault = func(err error) { time.AfterFunc(faultGrace, func() { j.cancel(err) }) }
	j.endRanks = sync.OnceFunc(func() { close(j.ranksEnded) })
	j.onClose(j.endRanks)
	return j
}

// prepare builds the program if it is Go source, asks remote hosts their
// slot counts over ssh and opens the bus to them (ssh.go), and makes
// --trace's file, so that a file that cannot be written is said before the
// job runs.
func (r *runner) prepare(j *job, prog string) error {
	t := time.Now()
	p, err := PrepareProgram(j.ctx, prog, r.cfg.Stderr)
	if err != nil {
		return err
	}
	j.prog = p
	j.onClose(p.Remove)
	if p.Built {
		r.logf("built %s in %v", prog, time.Since(t).Round(time.Millisecond))
	}
	if j.pre, err = prepareHosts(j.ctx, &r.cfg, r.logf); err != nil {
		return err
	}
	j.onClose(func() { closeAgents(j.pre, r.cfg.SSH.timeout()) }) // those startRemote did not take over
	j.info = jobInfo{ID: uuid.NewString(), SharedMemory: !r.cfg.NoSharedMemory}
	if r.cfg.Trace != "" {
		j.info.Trace = r.cfg.TraceSize
		if j.traceFile, err = os.Create(r.cfg.Trace); err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		j.onClose(func() { j.traceFile.Close() })
	}
	return nil
}

// openBus opens the job's bus: the embedded server, or --nats's.
func (r *runner) openBus(j *job) error {
	var err error
	if r.cfg.NATSURL == "" {
		err = r.embeddedBus(j)
	} else {
		err = r.externalBus(j)
	}
	if err == nil {
		r.logf("job %s", j.info.ID)
	}
	return err
}

// embeddedBus starts a server here, and (with remote hosts) one on every
// other host of the job, in one cluster whose seed is this one.
func (r *runner) embeddedBus(j *job) error {
	cfg := &r.cfg
	users, seeds, err := jobKeys(j.info.ID, cfg.N)
	if err != nil {
		return err
	}
	spec := &serverSpec{Name: "gorun", Host: cfg.NATSHost, JobID: j.info.ID, Size: cfg.N, Users: users, Verbose: cfg.Verbose, Logf: r.out.printf}
	var remotes []Host
	for _, h := range cfg.Hosts {
		if !h.IsLocal() {
			remotes = append(remotes, h)
		}
	}
	if len(remotes) > 0 {
		c, cs, err := clusterFor(j.ctx, cfg, j.info.ID, users, remotes)
		if err != nil {
			return err
		}
		spec, j.info.Cluster = cs, c
	}
	srv, err := startServer(spec)
	if err != nil {
		return err
	}
	j.onClose(srv.Shutdown)
	j.info.NATSURL, j.info.Server = srv.URL(), srv
	j.info.Creds = make(map[int]string, len(seeds))
	for r, seed := range seeds {
		j.info.Creds[r] = seed
	}
	r.logf("embedded NATS server listening on %s:%d", cfg.NATSHost, srv.Port())
	if c := j.info.Cluster; c != nil {
		c.setSeed(spec.Cluster.Advertise, srv.RoutePort())
		r.logf("the job's cluster: routes (TLS) to this host at %s", c.seed)
		// Until the ranks have ended, a route that closes ends the job.
		host, _ := os.Hostname()
		go srv.watchRoutes(host, j.ranksEnded, func(err error) { j.fault(jobFault(err.Error())) })
	}
	return nil
}

// externalBus checks --nats's server and mints or shares the ranks'
// credentials on it.
func (r *runner) externalBus(j *job) error {
	cfg := &r.cfg
	bus, err := newExternalBus(cfg)
	if err != nil {
		return err
	}
	if urlToken(cfg.NATSURL) != "" {
		r.out.printf("warning: --nats: a token in the URL shows on gorun's command line to every user of this machine; set GORUN_NATS_TOKEN instead (ranks get it that way, never in their URL)")
	}
	expires := time.Now().Add(mintLifetime)
	if cfg.Timeout > 0 {
		expires = time.Now().Add(cfg.Timeout + 10*time.Minute)
	}
	auth, err := bus.checkOptions(j.info.ID, expires)
	if err != nil {
		return fmt.Errorf("--nats %s: %w", redactURL(cfg.NATSURL), err)
	}
	url := stripUserInfo(cfg.NATSURL)
	cctx, ccancel := context.WithTimeout(j.ctx, cfg.ConnectTimeout)
	err = checkExternal(cctx, url, cfg.ConnectTimeout, auth)
	ccancel()
	if err != nil {
		return fmt.Errorf("--nats %s: cannot connect: %w", redactURL(cfg.NATSURL), err)
	}
	if j.info.Creds, err = bus.rankCreds(j.info.ID, cfg.N, expires); err != nil {
		return fmt.Errorf("--nats-account-key: %w", err)
	}
	j.info.NATSURL, j.info.TLS = url, bus.tls
	if bus.isolated() {
		r.logf("each rank connects as a user of its own, minted for this job (valid until %s)", expires.Format(time.RFC3339))
	} else {
		j.info.Token = bus.token
		r.out.printf("warning: --nats: the job is not isolated from other users of this server: every rank connects with the same credentials; give --nats-account-key to mint users for each job and rank")
	}
	r.logf("using the NATS server at %s", redactURL(cfg.NATSURL))
	return nil
}

// place decides where each rank runs, checks the remote hosts and copies
// the program with --copy (ssh.go), and makes a spawner for every host
// with ranks.
func (r *runner) place(j *job) error {
	cfg := &r.cfg
	plan, err := r.plan()
	if err != nil {
		return err
	}
	j.plan = plan
	r.logPaths(plan)
	r.warnUnused(j.ctx, plan)
	rm, err := startRemote(j.ctx, cfg, &j.plan, j.prog.Path, j.info, j.pre, r.logf)
	if err != nil {
		return err
	}
	j.onClose(rm.close)
	env := resolveEnv(cfg.Env)
	for i, h := range j.plan.Hosts {
		var procs []Proc
		for _, pr := range j.plan.Procs {
			if pr.Host == i {
				procs = append(procs, pr)
			}
		}
		if len(procs) == 0 {
			continue
		}
		sp, err := newSpawner(h, i, rm)
		if err != nil {
			return err
		}
		spec := &spawnSpec{
			Plan: &j.plan, Host: i, Procs: procs,
			Path: j.prog.Path, Args: j.args, WorkDir: cfg.WorkDir,
			Env: env, Job: j.info, Out: r.out,
			Fail: j.fault,
		}
		if procs[0].Rank == 0 {
			spec.Stdin = cfg.Stdin
		}
		j.specs = append(j.specs, spec)
		j.spawners = append(j.spawners, sp)
	}
	return nil
}

// supervise starts every host's ranks, watches them until every rank has
// ended, and reports: --stats, --trace, the job's result.
func (r *runner) supervise(j *job) error {
	cfg := &r.cfg
	exits := make(chan rankExit, cfg.N)
	startCtx, stopStarting := context.WithCancel(j.ctx)
	defer stopStarting()
	var starting sync.WaitGroup
	for k, sp := range j.spawners {
		starting.Go(func() { sp.start(startCtx, j.specs[k], exits) })
	}
	j.launch() // from here on, watch reads sigCh
	r.logf("starting %d ranks of %s", cfg.N, j.prog.Path)

	hw := r.newHangWatch(j)
	res := r.watch(j.ctx, j.spawners, exits, j.sigCh, j.usr1, hw)
	if cfg.Stats {
		hw.printStats()
	}
	if j.traceFile != nil {
		r.writeTrace(j.traceFile, hw)
	}
	j.endRanks()
	stopStarting()
	starting.Wait()
	if !r.out.wait(outputDrain) {
		r.logf("output of some rank still open %v after it ended; closed", outputDrain)
	}
	r.logf("job ended after %v", time.Since(r.t0).Round(time.Millisecond))
	return res
}

// newHangWatch returns the hang report's and the trace's view of j's
// ranks: the spawner and the host of each.
func (r *runner) newHangWatch(j *job) *hangWatch {
	hw := &hangWatch{r: r, spawners: j.spawners, ended: map[int]rankExit{}, spawnerOf: make([]int, r.cfg.N)}
	for k, spec := range j.specs {
		for _, pr := range spec.Procs {
			hw.spawnerOf[pr.Rank] = k
		}
	}
	if len(j.plan.Hosts) > 1 {
		hw.hostOf = make([]string, r.cfg.N)
		for _, pr := range j.plan.Procs {
			hw.hostOf[pr.Rank] = j.plan.Hosts[pr.Host].String()
		}
	}
	return hw
}

// writeTrace writes the job's trace to f, --trace's file, and closes it.
func (r *runner) writeTrace(f *os.File, hw *hangWatch) {
	err := hw.writeTrace(f, r.t0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.out.printf("--trace %s: %v", r.cfg.Trace, err)
	} else {
		r.logf("wrote the job's trace to %s", r.cfg.Trace)
	}
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
