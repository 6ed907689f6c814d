package launcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gorun-hpc/gorun/internal/bus"
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
	phases    *phases      // the start's phases, once placed
	keeper    *earlyKeeper // this machine's keeper, started in prepare (a job on this machine alone)

	sigCh, usr1 chan os.Signal
	launch      func() // hands sigCh over from the start-up to supervise
	fault       func(error)
	lostMu      sync.Mutex
	lostAddrs   map[string]bool // addresses of hosts held lost (their routes' end is no news)
	endRanks    func()          // every rank has ended: the routes' watch is over
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

// hostLost records the addresses of a host held lost (--on-failure
// continue goes on without it).
func (j *job) hostLost(addrs ...string) {
	j.lostMu.Lock()
	defer j.lostMu.Unlock()
	if j.lostAddrs == nil {
		j.lostAddrs = make(map[string]bool)
	}
	for _, a := range addrs {
		if a != "" {
			j.lostAddrs[a] = true
		}
	}
}

// routeToLost reports whether err is the end of a route to a host held
// lost.
func (j *job) routeToLost(err error) bool {
	peer, ok := bus.LostRoutePeer(err.Error())
	j.lostMu.Lock()
	defer j.lostMu.Unlock()
	return ok && j.lostAddrs[peer]
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
	j.fault = func(err error) {
		if r.cfg.OnFailure != OnFailureContinue {
			time.AfterFunc(faultGrace, func() { j.cancel(err) })
			return
		}
		// The job goes on without a lost host: the end of a route to it
		// (maybe before gorun holds it lost) is no news.
		time.AfterFunc(HeartbeatTimeout+faultGrace, func() {
			if j.routeToLost(err) {
				r.logf("%v: that host is lost, and the job goes on without it", err)
				return
			}
			j.cancel(err)
		})
	}
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
	if len(r.cfg.Hosts) == 0 {
		// Every rank runs here: the keeper starts now, beside the keys
		// and the server, not on the way to the first rank.
		j.keeper = startKeeperEarly(j.info.ID)
		j.onClose(j.keeper.release)
	}
	if r.cfg.Trace != "" {
		j.info.Trace = r.cfg.TraceSize
		if j.traceFile, err = os.Create(r.cfg.Trace); err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		j.onClose(func() { j.traceFile.Close() })
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
	j.phases.start()
	for k, sp := range j.spawners {
		starting.Go(func() { sp.start(startCtx, j.specs[k], exits) })
	}
	j.launch() // from here on, watch reads sigCh
	r.logf("starting %d ranks of %s", cfg.N, j.prog.Path)

	hw := r.newHangWatch(j)
	res := r.watch(j.ctx, j.spawners, exits, j.sigCh, j.usr1, hw, func(rank int) { go r.announceDeath(j, rank) })
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
