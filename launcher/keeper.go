package launcher

import (
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/warmup"
)

// A keeper ends what a job left on a host when gorun or the host's agent
// dies without ending it, SIGKILL included. Ranks die with their parent by
// themselves (Pdeathsig), but not what they started: a child, or a
// daemon in a session of its own, would outlive a SIGKILLed gorun or
// agent, and nothing else is left on the host to end it.
//
// So gorun (for its own machine's ranks) and every agent start a keeper
// beside their ranks: this very program again, with keeperArg, the job's
// id and its parent's pid, in a session of its own, its stdin a pipe from
// the parent (first a shell that becomes it if the parent dies: see
// keeperLate). The keeper waits for that pipe's end. When the parent dies,
// however it dies, the pipe ends without a word, and the keeper kills
//
//   - every process it last saw descending from its parent (the ranks,
//     what they started, the orphans the parent adopted as their child
//     subreaper, ssh sessions to other hosts), if it still runs with the
//     same start time, and what descends from those now: the parent's
//     process tree, wherever it moved its environment, process group or
//     session; every lineagePoll the keeper records that tree (pid and
//     start time of each process: a read of every /proc/PID/stat, 1.6 to
//     2.2 ms of CPU for 110 processes on a busy 2-core machine, about 0.4%
//     of a core; BenchmarkLineageRecord). What a rank started and
//     lost (an orphan moved up) within lineagePoll before the parent died
//     is not seen, unless it carries the job's id:
//   - every process of its user whose environment carries the job's id.
//
// It never kills itself nor another keeper, and exits. When the job ends
// normally, the parent (which has ended its own ranks' leftovers itself)
// writes keeperDone first, and the keeper exits without a sweep: ranks of
// the same job on another host that shares this machine's process table
// (a host named twice, or the tests' namespace hosts) are not its to end
// while they run.
//
// Any program that links this package can be a keeper: its init takes the
// process over when it is started with keeperArg, before main runs.
const keeperArg = warmup.KeeperArg

// keeperDone is what the parent writes to release its keeper without a
// sweep.
const keeperDone = "done\n"

// lineagePoll is how often a keeper records its parent's process tree.
const lineagePoll = 500 * time.Millisecond

func init() {
	if len(os.Args) == 4 && os.Args[1] == keeperArg {
		parent, _ := strconv.Atoi(os.Args[3])
		os.Exit(runKeeper(os.Stdin, os.Args[2], parent))
	}
}

// runKeeper records parent's process tree every lineagePoll until in's
// end, then kills that tree and job's processes, unless the parent wrote
// keeperDone first.
func runKeeper(in io.Reader, job string, parent int) int {
	// A hang-up or an interrupt of the session gorun ran in is no reason
	// to leave before the job is gone.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT)
	var tree *lineage
	stop, stopped := make(chan struct{}), make(chan struct{})
	if parent > 1 && os.Getppid() == parent {
		tree = newLineage(parent)
		go func() {
			defer close(stopped)
			t := time.NewTicker(lineagePoll)
			defer t.Stop()
			for {
				tree.record()
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
	} else {
		close(stopped) // the parent is gone already: its tree is unknown
	}
	b, _ := io.ReadAll(io.LimitReader(in, 64))
	io.Copy(io.Discard, in)
	close(stop)
	<-stopped
	if string(b) != keeperDone {
		if tree != nil {
			tree.kill()
		}
		sweepOrphans(job)
		// The segments' creator is the parent: the sweep takes a live
		// creator's segments for in use, and a parent whose end closed
		// this pipe may still be exiting (a process's files close before
		// it is a zombie). Once this keeper has a new parent, the old one
		// has left that far.
		waitOrphaned(parent, parentGoneWait)
		sweepSegments() // its creator is gone: the host's shared memory goes too
	}
	return 0
}

// parentGoneWait bounds how long a keeper waits for its parent's exit to
// finish before it sweeps.
const parentGoneWait = 10 * time.Second

// waitOrphaned waits until this process's parent is no longer parent,
// polling, for at most d.
func waitOrphaned(parent int, d time.Duration) {
	if parent <= 1 {
		return
	}
	for deadline := time.Now().Add(d); os.Getppid() == parent && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// A job's keeper starts in two steps, so that a short job pays for a small
// process only: at once a shell (shellKeeper) that waits for the pipe's
// end and, if its parent died, execs this program as a keeper, which then
// sweeps by the job's id (it has no record of the tree: the parent is
// gone); and keeperLate later, if the job still runs, this program as the
// keeper that records the tree, which replaces the shell. A job that ends
// sooner never starts it: the keeper, a re-exec of this whole program with
// its runtime and package init and a first read of every /proc/PID/stat,
// cost about 20 ms of a 2-core machine's time at each launch of 8 ranks.
// What a rank starts is recorded within lineagePoll of its start as
// before: keeperLate is less than lineagePoll, and the keeper records at
// once when it starts.
const keeperLate = lineagePoll / 2

// shellKeeper is the shell's script: $0 is keeperArg (so that isKeeper
// knows it), $1 this program, $2 the job's id, $3 the parent's pid. read
// gives up at the pipe's end; keeperDone releases it.
const shellKeeper = `read -r line; [ "$line" = done ] && exit 0; exec "$1" "$0" "$2" "$3"`

// shell is the shell that the first step runs.
const shell = "/bin/sh"

// keeper is a started keeper, as its parent holds it: the shell, then the
// recording keeper once it has replaced it.
type keeper struct {
	job, exe string
	mu       sync.Mutex
	cmd      *exec.Cmd
	w        *os.File    // its stdin's write end: see release
	late     *time.Timer // starts the recording keeper; nil where it started at once
	released bool
}

// An earlyKeeper is a job's keeper started ahead of its ranks, beside the
// job's keys and server (startKeeperEarly): its fork and exec, about
// 1.5 ms, were on the way from gorun's start to its first rank. The
// machine's ranks take it (hostRanks.start); the job's end releases it
// if they never started.
type earlyKeeper struct {
	started chan struct{}
	k       *keeper // once started; nil where none could start
	mu      sync.Mutex
	taken   bool
}

// startKeeperEarly starts job's keeper in the background.
func startKeeperEarly(job string) *earlyKeeper {
	e := &earlyKeeper{started: make(chan struct{})}
	go func() {
		defer close(e.started)
		e.k = startKeeper(job)
	}()
	return e
}

// take waits until the keeper has started and hands it over, once: a
// second take, or one after release, gets nil.
func (e *earlyKeeper) take() *keeper {
	<-e.started
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.taken {
		return nil
	}
	e.taken = true
	return e.k
}

// release releases the keeper if no one took it.
func (e *earlyKeeper) release() { e.take().release() }

// startKeeper starts a keeper for job, or returns nil where it cannot
// (no /proc, no executable to start).
func startKeeper(job string) *keeper {
	if !keeperSupported || job == "" {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	k := &keeper{job: job, exe: exe}
	if _, err := os.Stat(shell); err != nil {
		// No shell: the recording keeper at once.
		if k.cmd, k.w = k.start(exe, keeperArg, job, strconv.Itoa(os.Getpid())); k.cmd == nil {
			return nil
		}
		return k
	}
	k.cmd, k.w = k.start(shell, "-c", shellKeeper, keeperArg, exe, job, strconv.Itoa(os.Getpid()))
	if k.cmd == nil {
		return nil
	}
	k.late = time.AfterFunc(keeperLate, k.record)
	return k
}

// start starts a keeper process: path with args, stdin the read end of a
// pipe whose write end it returns.
func (k *keeper) start(path string, args ...string) (*exec.Cmd, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:  path,
		Args:  append([]string{path}, args...),
		Env:   []string{}, // not the job's id: it must not sweep itself
		Stdin: r,
		// Out of gorun's process group and session: a signal to either
		// does not end it before its work.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, nil
	}
	return cmd, w
}

// record replaces the shell with the keeper that records the parent's
// tree, unless the job is over (released). The shell stays where the
// keeper cannot start.
func (k *keeper) record() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.released {
		return
	}
	cmd, w := k.start(k.exe, keeperArg, k.job, strconv.Itoa(os.Getpid()))
	if cmd == nil {
		return
	}
	old, oldw := k.cmd, k.w
	k.cmd, k.w = cmd, w
	free(old, oldw)
}

// free releases one keeper process and waits for it.
func free(cmd *exec.Cmd, w *os.File) {
	w.Write([]byte(keeperDone))
	w.Close()
	cmd.Wait()
}

// release tells the keeper the job is over here: it exits without a
// sweep. release waits for that.
func (k *keeper) release() {
	if k == nil {
		return
	}
	if k.late != nil {
		k.late.Stop()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.released = true
	free(k.cmd, k.w)
}
