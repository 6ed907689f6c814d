package launcher

import (
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// A keeper ends what a job left on a host when gorun or the host's agent
// dies without ending it, SIGKILL included. Ranks die with their parent by
// themselves (Pdeathsig), but not what they started: a child, or a
// daemon in a session of its own, would outlive a SIGKILLed gorun or
// agent, and nothing else is left on the host to end it.
//
// So gorun (for its own machine's ranks) and every agent start a keeper
// beside their ranks: this very program again, with keeperArg and the
// job's id, in a session of its own, its stdin a pipe from the parent.
// The keeper waits for that pipe's end. When the parent dies, however it
// dies, the pipe ends without a word: the keeper kills every process of
// its user whose environment carries the job's id, and exits. When the job
// ends normally, the parent (which has ended its own ranks' leftovers
// itself) writes keeperDone first, and the keeper exits without a sweep:
// ranks of the same job on another host that shares this machine's
// process table (a host named twice, or the tests' namespace hosts) are
// not its to end while they run.
//
// Any program that links this package can be a keeper: its init takes the
// process over when it is started with keeperArg, before main runs.
const keeperArg = "__gorun_keeper"

// keeperDone is what the parent writes to release its keeper without a
// sweep.
const keeperDone = "done\n"

func init() {
	if len(os.Args) == 3 && os.Args[1] == keeperArg {
		os.Exit(runKeeper(os.Stdin, os.Args[2]))
	}
}

// runKeeper waits for in's end, then sweeps job's processes, unless the
// parent wrote keeperDone first.
func runKeeper(in io.Reader, job string) int {
	// A hang-up or an interrupt of the session gorun ran in is no reason
	// to leave before the job is gone.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT)
	b, _ := io.ReadAll(io.LimitReader(in, 64))
	io.Copy(io.Discard, in)
	if string(b) != keeperDone {
		sweepOrphans(job)
	}
	return 0
}

// keeper is a started keeper, as its parent holds it.
type keeper struct {
	cmd *exec.Cmd
	w   *os.File // its stdin's write end: see release
}

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
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:  exe,
		Args:  []string{exe, keeperArg, job},
		Env:   []string{}, // not the job's id: it must not sweep itself
		Stdin: r,
		// Out of gorun's process group and session: a signal to either
		// does not end it before its work.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil
	}
	return &keeper{cmd: cmd, w: w}
}

// release tells the keeper the job is over here: it exits without a
// sweep. release waits for that.
func (k *keeper) release() {
	if k == nil {
		return
	}
	k.w.Write([]byte(keeperDone))
	k.w.Close()
	k.cmd.Wait()
}
