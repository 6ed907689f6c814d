package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// localSpawner starts ranks as child processes of gorun on this machine, each
// in a process group of its own.
type localSpawner struct {
	host string // this machine's name, for messages

	mu      sync.Mutex
	running map[int]int    // rank -> pid (= its process group id), until reaped
	stopSig syscall.Signal // the strongest signal stop has sent; 0 if none
}

var _ spawner = (*localSpawner)(nil)

func newLocalSpawner() *localSpawner {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &localSpawner{host: host, running: make(map[int]int)}
}

func (s *localSpawner) start(ctx context.Context, spec *spawnSpec, exits chan<- rankExit) {
	base := append(inheritedEnv(), spec.Env...)
	// gorun's own GOMAXPROCS: the cores it may use, cgroup limits included.
	base = append(base, shareCPUs(base, len(spec.Procs), runtime.GOMAXPROCS(0))...)
	size := len(spec.Plan.Procs)
	for i, p := range spec.Procs {
		if ctx.Err() != nil {
			notStarted(spec.Procs[i:], s.host, exits)
			return
		}
		env := append(base[:len(base):len(base)], spec.Job.ContractEnv(p, size, spec.Job.NATSURL)...)
		if err := s.startRank(spec, p, env, exits); err != nil {
			exits <- rankExit{Rank: p.Rank, Host: s.host, Err: fmt.Errorf("could not start: %w", err)}
			notStarted(spec.Procs[i+1:], s.host, exits)
			return
		}
	}
}

// notStarted reports procs as never started.
func notStarted(procs []Proc, host string, exits chan<- rankExit) {
	for _, p := range procs {
		exits <- rankExit{Rank: p.Rank, Host: host, NotStarted: true}
	}
}

// startRank starts one rank, its output forwarding and its reaper.
func (s *localSpawner) startRank(spec *spawnSpec, p Proc, env []string, exits chan<- rankExit) error {
	outR, outW, errR, errW, err := outputPipes()
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{
		Path:        spec.Path,
		Args:        append([]string{spec.Path}, spec.Args...),
		Env:         env,
		Dir:         spec.WorkDir,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: rankProcAttr(),
	}
	var stdinW *os.File // the pipe gorun copies Stdin into, if it does
	if p.Rank == 0 && spec.Stdin != nil {
		if f, ok := spec.Stdin.(*os.File); ok && !isCharDevice(f) {
			cmd.Stdin = f // a file or pipe: the rank reads it directly
		} else {
			// A terminal (or any other reader): copy it through a pipe, so
			// the rank, outside the terminal's foreground process group,
			// never reads the terminal itself (which would stop it with
			// SIGTTIN).
			r, w, err := os.Pipe()
			if err != nil {
				outR.Close()
				outW.Close()
				errR.Close()
				errW.Close()
				return err
			}
			cmd.Stdin = r
			stdinW = w
			defer r.Close()
		}
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if stdinW != nil {
			stdinW.Close()
		}
		return err
	}
	pid := cmd.Process.Pid
	spec.Out.forward(p.Rank, outR, false)
	spec.Out.forward(p.Rank, errR, true)
	if stdinW != nil {
		go func() {
			io.Copy(stdinW, spec.Stdin)
			stdinW.Close()
		}()
	}

	s.mu.Lock()
	s.running[p.Rank] = pid
	if s.stopSig != 0 {
		syscall.Kill(-pid, s.stopSig) // stop came while this rank started
	}
	s.mu.Unlock()

	go func() {
		werr := cmd.Wait()
		s.mu.Lock()
		delete(s.running, p.Rank)
		s.mu.Unlock()
		// Whatever the rank left behind in its group goes with it, and its
		// output pipes reach EOF.
		syscall.Kill(-pid, syscall.SIGKILL)
		if stdinW != nil {
			stdinW.Close()
		}
		exits <- waitResult(p.Rank, s.host, pid, werr)
	}()
	return nil
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

func (s *localSpawner) stop(kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopSig != syscall.SIGKILL {
		s.stopSig = sig
	}
	for _, pid := range s.running {
		syscall.Kill(-pid, sig)
	}
}

// isCharDevice says whether f is a terminal or other character device.
func isCharDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
