package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/bus"

	"github.com/gorun-hpc/gorun/internal/contract"
)

// hostJob is what one host runs of a job: its ranks, the program, and the
// launch contract's values. gorun gives it to the agent of every remote
// host (as JSON, over the agent's ssh channel), and to the in-process
// agent of its own machine.
type hostJob struct {
	Host    string   // the host's name, for messages
	Procs   []Proc   // the ranks on this host, in rank order
	Size    int      // the job's size
	Path    string   // the executable
	Args    []string // its arguments, without the program name
	WorkDir string   // the directory ranks must start in; "" for Cwd
	Cwd     string   // tried when WorkDir is "", else the home directory (remote hosts)
	Env     []string // the -x variables, as VAR=VALUE
	JobID   string
	Token   string         // a shared server's token, "" when it needs none
	Creds   map[int]string // rank -> its credentials, for this host's ranks only
	TLS     bus.TLSFiles   // a --nats server's TLS files
	NATSURL string         // the bus as this host's ranks reach it
	Remote  bool           // the host is not gorun's: the program may be missing there
	Trace   int            // events each rank keeps for --trace; 0: none
	Shm     bool           // the host's ranks talk through shared memory (gorun --shm)
}

// hostRanks starts, watches and stops the ranks of one host: the part of a
// host's agent that deals with processes. The same code runs inside gorun
// for its own machine (localSpawner) and inside the agent on every remote
// host (RunAgent).
//
// Each rank runs in a process group of its own, with the launch contract's
// environment and its share of this host's cores (GOMAXPROCS). Output goes
// to onOutput, one call per stream; how each rank ended goes to onExit once
// the rank has been reaped. What a rank leaves behind is ended too: its
// process group when the rank ends; what holds its output or control
// socket open outputDrain after it ended (a child in a session of its
// own), so that its end is reported then, not when that child ends; and
// at sweep every descendant of the job, wherever it moved its process
// group or session, with its environment or without (see sweep: gorun and
// the agent are child subreapers, so orphans stay their children and are
// reaped). And should the process that runs hostRanks die first, SIGKILL
// included, its keeper ends them (see keeper.go).
type hostRanks struct {
	host     string
	onOutput func(rank int, stderr bool, r io.ReadCloser)
	onExit   func(x rankExit)

	mu      sync.Mutex
	running map[int]int          // rank -> pid (= its process group id), until reaped
	ctl     map[int]*rankControl // rank -> its control socket, until reaped
	stopSig syscall.Signal       // the strongest signal stop has sent; 0 if none
	wg      sync.WaitGroup       // rank reapers
	keeper  chan *keeper         // the keeper, once started (nil in it: none)
	early   *earlyKeeper         // the keeper started ahead of start, if any
	since   uint64               // when the first rank started (procStat.start), 0 before
	first   int                  // the first rank's pid, 0 before
	firstAt time.Time            // when this process started it
	over    bool                 // finish has run: the job no longer counts in liveJobs
	finish1 sync.Once
	shm     string // the host's shared-memory segment until it is removed; "" for none
	inited  int    // ranks that reported Init: the segment goes once all have
	ranks   int    // the ranks of the host
	procs   int    // the ranks start starts
	// onJoined, if set before start, is called once every rank of the
	// host has returned from Init.
	onJoined func()
}

// liveJobs counts the jobs whose ranks run in this process (hostRanks from
// newHostRanks to finish): sweep takes this process's orphans for a job's
// only while it runs no other (see sweep). gorun and an agent run one job;
// a test binary may run several at once.
var liveJobs atomic.Int32

func newHostRanks(host string, onOutput func(int, bool, io.ReadCloser), onExit func(rankExit)) *hostRanks {
	liveJobs.Add(1)
	return &hostRanks{host: host, onOutput: onOutput, onExit: onExit, running: make(map[int]int), ctl: make(map[int]*rankControl), keeper: make(chan *keeper, 1)}
}

// start starts j's ranks; stdin (nil: none) goes to the host's first rank
// when that is rank 0. It reports every rank of j to onExit exactly once:
// when it has ended, or at once for a rank that could not start (with Err)
// and those given up on after it or once ctx is done (NotStarted).
func (h *hostRanks) start(ctx context.Context, j *hostJob, stdin io.Reader) {
	base := append(inheritedEnv(), j.Env...)
	// This host's GOMAXPROCS: the cores it may use, cgroup limits included.
	base = append(base, shareCPUs(base, len(j.Procs), runtime.GOMAXPROCS(0))...)
	dir := j.WorkDir
	if dir == "" && j.Cwd != "" {
		if fi, err := os.Stat(j.Cwd); err == nil && fi.IsDir() {
			dir = j.Cwd
		} else if home, err := os.UserHomeDir(); err == nil {
			dir = home
		}
	}
	info := jobInfo{ID: j.JobID, Token: j.Token, Creds: j.Creds, TLS: j.TLS, Trace: j.Trace}
	h.mu.Lock()
	h.procs = len(j.Procs)
	h.mu.Unlock()
	// The keeper first, before the segment and the ranks it sweeps should
	// this process die. Started beside the ranks (as it was), its fork
	// and exec held up theirs: launches of 8 ranks took 3-5% longer.
	if h.early != nil {
		h.keeper <- h.early.take()
	} else {
		h.keeper <- startKeeper(j.JobID)
	}
	if j.Shm && len(j.Procs) > 1 {
		// Without a segment the ranks talk through the bus: slower, as
		// right.
		if path, err := newSegment(len(j.Procs)); err == nil {
			h.mu.Lock()
			h.shm, h.ranks = path, len(j.Procs)
			h.mu.Unlock()
			info.Shm = path
		}
	}
	for i, p := range j.Procs {
		if ctx.Err() != nil {
			h.notStarted(j.Procs[i:])
			return
		}
		env := append(base[:len(base):len(base)], info.ContractEnv(p, j.Size, j.NATSURL)...)
		var in io.Reader
		if p.Rank == 0 {
			in = stdin
		}
		if err := h.startRank(j, p, dir, env, in); err != nil {
			if j.Remote && errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("%s is not there (the program must be at the same path on every host, or use --copy)", j.Path)
			}
			h.onExit(rankExit{Rank: p.Rank, Host: h.host, Err: fmt.Errorf("could not start: %w", err)})
			h.notStarted(j.Procs[i+1:])
			return
		}
	}
	h.tellPids()
}

func (h *hostRanks) notStarted(procs []Proc) {
	for _, p := range procs {
		h.onExit(rankExit{Rank: p.Rank, Host: h.host, NotStarted: true})
	}
}

// notStarted reports procs as never started.
func notStarted(procs []Proc, host string, exits chan<- rankExit) {
	for _, p := range procs {
		exits <- rankExit{Rank: p.Rank, Host: host, NotStarted: true}
	}
}

// startRank starts one rank, its output forwarding and its reaper.
func (h *hostRanks) startRank(j *hostJob, p Proc, dir string, env []string, stdin io.Reader) error {
	outR, outW, errR, errW, err := outputPipes()
	if err != nil {
		return err
	}
	ctl, ctlW, err := newControl()
	if err != nil {
		closeAll(outR, outW, errR, errW)
		return err
	}
	defer ctlW.Close()
	in, stdinW, err := rankStdin(stdin)
	if err != nil {
		closeAll(outR, outW, errR, errW, ctl.f)
		return err
	}
	if stdinW != nil {
		defer in.Close()
	}
	cmd := &exec.Cmd{
		Path:        j.Path,
		Args:        append([]string{j.Path}, j.Args...),
		Env:         append(env, contract.Control+"=3"),
		Dir:         dir,
		Stdout:      outW,
		Stderr:      errW,
		ExtraFiles:  []*os.File{ctlW}, // descriptor 3
		SysProcAttr: rankProcAttr(),
	}
	if in != nil {
		cmd.Stdin = in
	}
	err = cmd.Start()
	closeAll(outW, errW, ctlW)
	if err != nil {
		closeAll(outR, errR, ctl.f)
		if stdinW != nil {
			stdinW.Close()
		}
		return err
	}
	rp := &rankProc{
		cmd: cmd, rank: p.Rank, pid: cmd.Process.Pid, stdinW: stdinW, ctl: ctl,
		out: &closeNotifier{ReadCloser: outR, done: make(chan struct{})},
		err: &closeNotifier{ReadCloser: errR, done: make(chan struct{})},
		// The streams' inodes, to find what holds them should they stay
		// open after the rank ended.
		inodes: []uint64{inode(outR), inode(errR), inode(ctl.f)},
	}
	ctl.pidOf = h.pidOf
	ctl.onInit = h.rankInited
	go ctl.read()
	h.onOutput(p.Rank, false, rp.out)
	h.onOutput(p.Rank, true, rp.err)
	if stdinW != nil {
		go func() {
			io.Copy(stdinW, stdin)
			stdinW.Close()
		}()
	}

	h.mu.Lock()
	h.running[p.Rank] = rp.pid
	h.ctl[p.Rank] = ctl
	if h.since == 0 {
		h.since = startOf(rp.pid)
		h.first, h.firstAt = rp.pid, time.Now()
	}
	if h.stopSig != 0 {
		syscall.Kill(-rp.pid, h.stopSig) // stop came while this rank started
	}
	h.mu.Unlock()

	h.wg.Add(1)
	go h.reap(rp)
	return nil
}

// rankStdin returns what a rank reads as its standard input, nil for
// none: stdin itself if it is a file or pipe; else (a terminal, or any
// other reader) the read end of a pipe whose write end w the caller feeds
// from stdin, so that the rank, outside the terminal's foreground process
// group, never reads the terminal itself (which would stop it with
// SIGTTIN).
func rankStdin(stdin io.Reader) (in, w *os.File, err error) {
	if stdin == nil {
		return nil, nil, nil
	}
	if f, ok := stdin.(*os.File); ok && !isCharDevice(f) {
		return f, nil, nil
	}
	return os.Pipe()
}

// rankProc is a started rank, as reap needs it.
type rankProc struct {
	cmd       *exec.Cmd
	rank, pid int
	stdinW    *os.File // the pipe its input is copied into; nil for none
	ctl       *rankControl
	out, err  *closeNotifier
	inodes    []uint64
}

// reap waits for rank p to end, ends what it left behind, waits a bounded
// time for its streams, and reports its end.
func (h *hostRanks) reap(p *rankProc) {
	defer h.wg.Done()
	werr := p.cmd.Wait()
	h.mu.Lock()
	delete(h.running, p.rank)
	delete(h.ctl, p.rank)
	h.mu.Unlock()
	// Whatever the rank left behind in its group goes with it, and its
	// output pipes reach EOF.
	syscall.Kill(-p.pid, syscall.SIGKILL)
	if p.stdinW != nil {
		p.stdinW.Close()
	}
	// Its output and control socket: every stream to its end, within
	// outputDrain together. What holds one open longer left the rank's
	// group (setsid, a daemon): it is the job's leftover, killed now; what
	// it wrote before still comes out, and the streams are closed in the
	// end whatever holds them (a process this one cannot see).
	if !waitClosed(outputDrain, p.out.done, p.err.done, p.ctl.done) {
		killHolders(p.inodes, h.isRank)
		if !waitClosed(outputDrain/4, p.out.done, p.err.done, p.ctl.done) {
			p.out.Close()
			p.err.Close()
		}
	}
	p.ctl.f.Close() // a descendant holding it open: what came is what counts
	<-p.ctl.done
	x := waitResult(p.rank, h.host, p.pid, werr)
	x.Report = p.ctl.rep
	h.onExit(x)
}

// waitResult turns cmd.Wait's error into a rankExit.
func waitResult(rank int, host string, pid int, err error) rankExit {
	x := rankExit{Rank: rank, Host: host, Pid: pid}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			x.Signal = ws.Signal()
		} else {
			x.Code = ee.ExitCode()
		}
	default:
		x.Err = err
	}
	return x
}

// stop signals every running rank's process group: SIGTERM, or SIGKILL
// when kill is set (and then every descendant of the job, too).
func (h *hostRanks) stop(kill bool, jobID string) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	h.mu.Lock()
	if h.stopSig != syscall.SIGKILL {
		h.stopSig = sig
	}
	for _, pid := range h.running {
		syscall.Kill(-pid, sig)
	}
	h.mu.Unlock()
	if kill {
		sweep(h.sweepSpec(jobID))
	}
}

// finish ends the job on this host once every rank has ended: it kills
// what the ranks left (sweep) and releases the keeper.
func (h *hostRanks) finish(jobID string) {
	sweep(h.sweepSpec(jobID))
	h.dropSegment()
	h.finish1.Do(func() {
		h.mu.Lock()
		h.over = true
		h.mu.Unlock()
		liveJobs.Add(-1)
		go func() { (<-h.keeper).release() }()
	})
}

// sweepSpec is what sweep ends of job: what carries its id, what descends
// from its running ranks, and this process's orphans while it runs only
// this job (see sweep).
func (h *hostRanks) sweepSpec(job string) sweepSpec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return sweepSpec{job: job, running: h.isRank, orphans: !h.over && liveJobs.Load() == 1, since: h.since, first: h.first, firstAt: h.firstAt}
}

// sweepSpec says what sweep ends.
type sweepSpec struct {
	job     string             // the job's id ("": no environment match)
	running func(pid int) bool // the job's running ranks; nil: none
	orphans bool               // this process runs this job only: its orphans are the job's
	since   uint64             // when the job's first rank here started (procStat.start); 0: unknown
	first   int                // that rank's pid (0: unknown): see newerProcs
	firstAt time.Time          // when it started, by this process's clock
}

// isRank says whether pid is a running rank (reaped by its own waiter).
func (h *hostRanks) isRank(pid int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.running {
		if p == pid {
			return true
		}
	}
	return false
}

// wait waits until every started rank has been reaped and reported.
func (h *hostRanks) wait() { h.wg.Wait() }

// rankInited counts a rank's Init: once every rank of the host has
// reported it, each has mapped the segment, whose name can go, and the
// host's ranks have joined the job (onJoined).
func (h *hostRanks) rankInited() {
	h.mu.Lock()
	h.inited++
	all := h.inited == h.ranks
	joined := h.inited == h.procs
	h.mu.Unlock()
	if all {
		h.dropSegment()
	}
	if joined && h.onJoined != nil {
		h.onJoined()
	}
}

// dropSegment removes the host's shared-memory segment, if it has one
// still.
func (h *hostRanks) dropSegment() {
	h.mu.Lock()
	path := h.shm
	h.shm = ""
	h.mu.Unlock()
	removeSegment(path)
}
