package launcher

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/gorun-hpc/gorun/internal/bus"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/contract"
)

// A spawner starts the ranks placed on one host and reports how each ended.
// launcher.Run makes one per host of the plan: a local spawner for this
// machine, an SSH spawner for each other one. Output forwarding, failure
// handling and teardown are Run's; a spawner only starts, signals and
// reaps.
type spawner interface {
	// start starts the ranks of spec.Procs (in rank order) and forwards
	// each one's stdout and stderr through spec.Out. For every rank of
	// spec.Procs it sends exactly one rankExit on exits: when the rank has
	// ended and been reaped; at once, with Err set, for a rank it could not
	// start; and at once, with NotStarted set, for the ranks it gave up on
	// after such an error or once ctx is done. start may return before its
	// ranks end, and must not block past ctx.
	start(ctx context.Context, spec *spawnSpec, exits chan<- rankExit)

	// stop signals every rank still running, with everything it started
	// (its process group): SIGTERM, or SIGKILL when kill is set. It does not
	// wait, and is safe to call at any time, concurrently, and repeatedly.
	stop(kill bool)

	// states asks every running rank what it is blocked in, for the hang
	// report, and returns the answers that came within a second or two,
	// by rank. It is safe to call at any time, concurrently.
	states() map[int]*blocked.State

	// clock is how far the host's clock is ahead of gorun's (0 for this
	// machine), for the trace's timestamps.
	clock() int64

	// dumpTraces asks every running rank for its trace so far (with
	// --trace, before the job is stopped), and waits a few seconds at most.
	dumpTraces()
}

// spawnSpec is what a spawner needs to start the ranks placed on one host.
type spawnSpec struct {
	Plan  *Plan
	Host  int    // index into Plan.Hosts
	Procs []Proc // the ranks on this host, in rank order

	Path    string   // the executable (absolute)
	Args    []string // its arguments, without the program name
	WorkDir string   // "" for gorun's own

	// Env is the -x variables, resolved to VAR=VALUE, for every rank;
	// ContractEnv gives each rank's GORUN_* variables.
	Env []string
	Job jobInfo

	Stdin io.Reader // rank 0's standard input, nil for none
	Out   *output
	Fail  func(error) // stops the job for a reason no rank's end tells (a jobFault)
	// HostLost records the addresses of a host held lost (no heartbeat):
	// under --on-failure continue, the end of a route to it is no fault.
	HostLost func(addrs ...string)
	// Routed takes a host's report on its server's routes (see
	// jobCluster.routed); Joined, that every rank of the host returned
	// from Init. Either may be nil.
	Routed func(server string, lacks []string)
	Joined func()

	keeper *earlyKeeper // this machine's keeper, started ahead (local spawner only; may be nil)
}

// hostJob is the part of the job that host (its name) runs, as this
// machine sees it: a remote host's spawner changes where the program and
// the bus are.
func (spec *spawnSpec) hostJob(host string) hostJob {
	return hostJob{
		Host: host, Procs: spec.Procs, Size: len(spec.Plan.Procs),
		Path: spec.Path, Args: spec.Args, WorkDir: spec.WorkDir, Env: spec.Env,
		JobID: spec.Job.ID, Token: spec.Job.Token, Creds: spec.Job.credsOf(spec.Procs), TLS: spec.Job.TLS,
		NATSURL: spec.Job.NATSURL, Trace: spec.Job.Trace, Shm: spec.Job.SharedMemory,
	}
}

// jobInfo is what identifies a job to its ranks.
type jobInfo struct {
	ID      string
	NATSURL string         // the bus as ranks on this machine reach it
	Token   string         // a shared server's token, "" when it needs none
	Creds   map[int]string // rank -> its own credentials (GORUN_NATS_CREDS); nil for none
	TLS     bus.TLSFiles   // a --nats server's TLS files, as paths on every host
	Trace   int            // events each rank keeps for --trace; 0: no tracing
	Shm     string         // this host's shared-memory segment (contract.SharedMemory); "" for none
	// SharedMemory: each host's ranks talk through a segment of its own
	// (not --shm=false).
	SharedMemory bool
	Server       *bus.Server // the embedded server, nil with --nats
	Cluster      *jobCluster // how other hosts' servers join it; nil for a job on this machine
}

// ContractEnv is the launch contract's variables for rank p of a job of
// size ranks, connecting to natsURL, as VAR=VALUE.
func (j jobInfo) ContractEnv(p Proc, size int, natsURL string) []string {
	env := []string{
		contract.Rank + "=" + strconv.Itoa(p.Rank),
		contract.Size + "=" + strconv.Itoa(size),
		contract.LocalRank + "=" + strconv.Itoa(p.LocalRank),
		contract.LocalSize + "=" + strconv.Itoa(p.LocalSize),
		contract.JobID + "=" + j.ID,
		contract.NATSURL + "=" + natsURL,
	}
	if j.Token != "" {
		env = append(env, contract.NATSToken+"="+j.Token)
	}
	if j.Trace > 0 {
		env = append(env, contract.Trace+"="+strconv.Itoa(j.Trace))
	}
	if j.Shm != "" {
		env = append(env, contract.SharedMemory+"="+j.Shm)
	}
	if c := j.Creds[p.Rank]; c != "" {
		env = append(env, contract.NATSCreds+"="+c)
	}
	for _, f := range []struct{ name, path string }{{contract.NATSCA, j.TLS.CA}, {contract.NATSCert, j.TLS.Cert}, {contract.NATSKey, j.TLS.Key}} {
		if f.path != "" {
			env = append(env, f.name+"="+f.path)
		}
	}
	return env
}

// credsOf is the credentials of procs only: what one host may know.
func (j jobInfo) credsOf(procs []Proc) map[int]string {
	if j.Creds == nil {
		return nil
	}
	out := make(map[int]string, len(procs))
	for _, p := range procs {
		out[p.Rank] = j.Creds[p.Rank]
	}
	return out
}

// resolveEnv turns -x entries into VAR=VALUE: "VAR" takes VAR's value in
// gorun's environment and is dropped when VAR is not set there (as mpirun
// does).
func resolveEnv(entries []string) []string {
	var env []string
	for _, e := range entries {
		if strings.Contains(e, "=") {
			env = append(env, e)
		} else if v, ok := os.LookupEnv(e); ok {
			env = append(env, e+"="+v)
		}
	}
	return env
}

// inheritedEnv is gorun's environment without any GORUN_ variable (so a
// gorun started inside a rank does not leak its job into the new one).
func inheritedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GORUN_") {
			env = append(env, kv)
		}
	}
	return env
}

// shareCPUs returns the GOMAXPROCS setting for each of ranks ranks started
// on a machine with cpus cores, as VAR=VALUE, or nothing when env (the
// ranks' environment so far) already sets GOMAXPROCS. The ranks share the
// cores: each gets cpus/ranks of them, at least one. Without it, every rank
// runs as many threads as the machine has cores, and oversubscribed ranks
// spend their time preempting one another: with 8 ranks on 2 cores an
// Allreduce of 8 MB took about 10% longer, and a Barrier about 20%.
func shareCPUs(env []string, ranks, cpus int) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return nil
		}
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(max(1, cpus/max(1, ranks)))}
}

// outputPipes makes the two pipes that carry a rank's stdout and stderr to
// gorun.
func outputPipes() (outR, outW, errR, errW *os.File, err error) {
	if outR, outW, err = os.Pipe(); err != nil {
		return nil, nil, nil, nil, err
	}
	if errR, errW, err = os.Pipe(); err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, nil, nil, err
	}
	return outR, outW, errR, errW, nil
}
