package launcher

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/internal/contract"
)

// Config says how to run a job: how many ranks, where, and how gorun
// behaves around them. Start from DefaultConfig, change what you need, and
// check it with Validate (Run validates it too).
type Config struct {
	// N is the number of ranks (world size). It must be at least 1.
	N int

	// Hosts are the machines the job runs on; nil runs every rank on this
	// machine. MapBy ("slot" or "node") and Oversubscribe decide how ranks
	// are placed on them (see MakePlan). Locally (Hosts nil) more ranks
	// than CPUs is always allowed.
	Hosts         []Host
	MapBy         string
	Oversubscribe bool

	// SSH says how ranks on other hosts are started (see SSHOptions).
	SSH SSHOptions

	// Launcher says how the agents of other hosts start: LauncherSSH (""
	// too: one ssh login per host) or LauncherSlurm (one srun step inside
	// the Slurm allocation gorun runs in; see SlurmHosts).
	Launcher string

	// TagOutput prefixes every line a rank writes with "[rank] ".
	TagOutput bool

	// Env lists variables given to every rank, as "VAR=VALUE", or "VAR"
	// for the value of VAR in gorun's own environment (mpirun's -x). Local
	// ranks also inherit gorun's whole environment.
	Env []string

	// OnFailure is what a failing rank does to the job: OnFailureAbort
	// ("" too) ends it, stopping every other rank; OnFailureContinue lets a
	// rank other than 0 die while the others go on: gorun names it, tells
	// every other rank (what waits for it fails with mpi.ErrPeerDied, and
	// pool re-runs its tasks), and exits 0 if rank 0 and the others do,
	// listing the dead ranks. Rank 0's failure ends the job either way.
	OnFailure string

	// Timeout ends the job when it runs longer; 0 means no limit. A job
	// that times out ends with ExitTimeout.
	Timeout time.Duration

	// HangReport, when not 0, prints the hang report (where every rank is
	// blocked, and the verdict: a deadlock and who waits for whom) once
	// every rank still running has been blocked in gorun's calls, none
	// moving, for that long; the job goes on. gorun prints the report too
	// when Timeout fires, and on SIGUSR1 (with Signals).
	HangReport time.Duration

	// Stats prints, once the job has ended, each rank's statistics: the
	// messages and bytes it sent and received (the collectives' own
	// included; a SendAll counts a message per receiver), its largest
	// message, and its calls of each blocking operation and collective
	// with the time they were blocked. A rank gives them when it closes
	// its world.
	Stats bool

	// Trace, when set, is the file gorun writes the job's timeline to, in
	// Chrome's trace-event format (Perfetto, chrome://tracing): a track per
	// rank, an event per gorun call, a flow from each send to its receive.
	// Each rank keeps its last TraceSize events, and gives them when it
	// closes its world, or, with the calls it is blocked in, when gorun
	// stops the job.
	Trace     string
	TraceSize int

	// NoSharedMemory makes every frame between ranks go through the bus
	// (gorun --shm=false). By default the ranks of one host talk through a
	// shared-memory segment that gorun (or the host's agent) makes for
	// them and removes when the job ends; ranks of different hosts, and
	// the control plane, always use the bus.
	NoSharedMemory bool

	// WorkDir is the directory the ranks start in; "" means gorun's own.
	WorkDir string

	// NATSURL, when set, is an existing NATS server (or a comma-separated
	// list of a cluster's servers; tls:// for TLS) to use instead of the
	// embedded one. A token for it comes from the GORUN_NATS_TOKEN variable
	// of gorun's environment (one in the URL works, with a warning: a
	// command line is public). Jobs on such a server are isolated from each
	// other only with NATSAccountKey.
	NATSURL string

	// NATSCreds is a NATS .creds file (a user JWT and its seed) for
	// NATSURL. Without NATSAccountKey every rank connects as that user.
	NATSCreds string

	// NATSCA, NATSCert and NATSKey are PEM files for TLS to NATSURL: the
	// CA that signed the server's certificate, and a client certificate
	// and its key when the server asks for one. Ranks read them at the
	// same paths on every host.
	NATSCA, NATSCert, NATSKey string

	// NATSAccountKey is a file holding an account signing key (an nkey
	// seed, "SA..."): what an operator of a shared server hands a team. With
	// it, gorun mints for every job one user per rank whose permissions
	// cover only that rank's subjects of that job, and which expires with
	// the job, so that no one else on the server can read, inject into or
	// disturb the job. NATSAccount is the account it signs for, when the
	// key is a signing key and not the account's own (NATSCreds's account
	// otherwise).
	NATSAccountKey, NATSAccount string

	// NATSHost is the address the embedded NATS server listens on for
	// ranks: "127.0.0.1" (the default); ranks on other hosts connect to
	// their own host's server of the job's cluster, never to this one.
	NATSHost string

	// RoutePorts is the range of ports (inclusive) the job's NATS servers
	// listen on for their cluster's routes, on every host of a multi-host
	// job; {0, 0} means any free port.
	RoutePorts [2]int

	// ConnectTimeout bounds the check that an existing NATS server
	// (NATSURL) answers.
	ConnectTimeout time.Duration

	// StopGrace is how long a rank has to exit after SIGTERM before it is
	// sent SIGKILL, once the job is being stopped.
	StopGrace time.Duration

	// Signals makes Run handle SIGINT and SIGTERM: the first stops the
	// job (exit code 130 or 143), a second SIGINT kills every rank at
	// once; and SIGUSR1, on which it prints the hang report and the job
	// goes on. The gorun command sets it; a library caller that cancels
	// ctx instead leaves it false.
	Signals bool

	// Verbose makes gorun say what it is doing, on Stderr.
	Verbose bool

	// Stdin is given to rank 0 (nil: no input). Stdout and Stderr receive
	// the ranks' output, whole lines at a time (nil: os.Stdout, os.Stderr).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// DefaultTraceSize is how many events each rank keeps for --trace.
const DefaultTraceSize = 50000

// What a failing rank does to the job (Config.OnFailure).
const (
	OnFailureAbort    = "abort"    // the job ends, as in MPI
	OnFailureContinue = "continue" // a rank other than 0 may die; the job goes on
)

// DefaultConfig returns a Config for a local job with one rank per CPU,
// the embedded NATS server on the loopback interface, and gorun's own
// standard input and output.
func DefaultConfig() Config {
	return Config{
		N:              runtime.NumCPU(),
		MapBy:          "slot",
		NATSHost:       "127.0.0.1",
		ConnectTimeout: 3 * time.Second,
		StopGrace:      500 * time.Millisecond,
		HangReport:     30 * time.Second,
		TraceSize:      DefaultTraceSize,
		Stdin:          os.Stdin,
		Stdout:         os.Stdout,
		Stderr:         os.Stderr,
	}
}

// Validate reports the first problem with cfg as an error that names the
// setting (by its gorun flag) and the bad value.
func (cfg *Config) Validate() error {
	if cfg.N < 1 {
		return fmt.Errorf("-n %d: the number of ranks must be at least 1", cfg.N)
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("--timeout %v: must not be negative", cfg.Timeout)
	}
	if cfg.TraceSize < 0 || (cfg.Trace != "" && cfg.TraceSize < 1) {
		return fmt.Errorf("--trace-size %d: must be at least 1", cfg.TraceSize)
	}
	if cfg.HangReport < 0 {
		return fmt.Errorf("--hang-report %v: must not be negative", cfg.HangReport)
	}
	if cfg.StopGrace < 0 {
		return fmt.Errorf("stop grace %v: must not be negative", cfg.StopGrace)
	}
	switch cfg.MapBy {
	case "", "slot", "node":
	default:
		return fmt.Errorf("--map-by %q: must be slot or node", cfg.MapBy)
	}
	switch cfg.OnFailure {
	case "", OnFailureAbort, OnFailureContinue:
	default:
		return fmt.Errorf("--on-failure %q: must be abort or continue", cfg.OnFailure)
	}
	switch cfg.Launcher {
	case "", LauncherSSH:
	case LauncherSlurm:
		if os.Getenv("SLURM_JOB_ID") == "" {
			return fmt.Errorf("--launcher slurm: not inside a Slurm allocation (SLURM_JOB_ID is not set): run gorun under salloc or sbatch")
		}
	default:
		return fmt.Errorf("--launcher %q: must be ssh, slurm or local", cfg.Launcher)
	}
	for _, kv := range cfg.Env {
		name, _, _ := strings.Cut(kv, "=")
		if err := checkEnvName(name); err != nil {
			return fmt.Errorf("-x %q: %w", kv, err)
		}
	}
	if cfg.WorkDir != "" {
		fi, err := os.Stat(cfg.WorkDir)
		if err != nil {
			return fmt.Errorf("--wdir %s: %w", cfg.WorkDir, unwrapPath(err))
		}
		if !fi.IsDir() {
			return fmt.Errorf("--wdir %s: not a directory", cfg.WorkDir)
		}
	}
	if p := cfg.RoutePorts; p != [2]int{} && (p[0] < 1 || p[1] < p[0] || p[1] > 65535) {
		return fmt.Errorf("--route-ports %d-%d: want LOW-HIGH, 1 <= LOW <= HIGH <= 65535", p[0], p[1])
	}
	return cfg.validateNATS()
}

// validateNATS checks the --nats flags: the files they name exist, and
// none is given without --nats, or without its partner.
func (cfg *Config) validateNATS() error {
	if cfg.NATSURL != "" {
		if err := checkNATSURL(cfg.NATSURL); err != nil {
			return fmt.Errorf("--nats %s: %w", redactURL(cfg.NATSURL), err)
		}
	} else {
		for _, f := range []struct{ name, v string }{
			{"--nats-creds", cfg.NATSCreds}, {"--nats-ca", cfg.NATSCA}, {"--nats-cert", cfg.NATSCert},
			{"--nats-key", cfg.NATSKey}, {"--nats-account-key", cfg.NATSAccountKey}, {"--nats-account", cfg.NATSAccount},
		} {
			if f.v != "" {
				return fmt.Errorf("%s is for an existing NATS server: give --nats URL too", f.name)
			}
		}
	}
	if (cfg.NATSCert == "") != (cfg.NATSKey == "") {
		return errors.New("--nats-cert and --nats-key go together")
	}
	if cfg.NATSAccount != "" && cfg.NATSAccountKey == "" {
		return errors.New("--nats-account names the account of --nats-account-key: give that too")
	}
	for _, f := range []struct{ name, path string }{
		{"--nats-creds", cfg.NATSCreds}, {"--nats-ca", cfg.NATSCA}, {"--nats-cert", cfg.NATSCert},
		{"--nats-key", cfg.NATSKey}, {"--nats-account-key", cfg.NATSAccountKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s %s: %w", f.name, f.path, unwrapPath(err))
		}
	}
	return nil
}

// checkEnvName rejects names that cannot be environment variables, and
// the launch contract's own.
func checkEnvName(name string) error {
	if name == "" {
		return errors.New("empty variable name")
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("%q is not a valid variable name", name)
		}
	}
	if strings.HasPrefix(name, contract.Prefix) {
		return fmt.Errorf("%s is set by gorun itself", name)
	}
	return nil
}

// checkNATSURL checks every URL of a comma-separated list.
func checkNATSURL(list string) error {
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return errors.New("empty URL in list")
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return errors.New("not a URL")
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			return fmt.Errorf("scheme %q: want nats:// or tls://", u.Scheme)
		}
		if u.Hostname() == "" {
			return errors.New("no host in URL")
		}
		if _, hasPass := u.User.Password(); hasPass {
			return errors.New("a user and password in the URL would show on gorun's command line: use --nats-creds, or a token in GORUN_NATS_TOKEN")
		}
	}
	return nil
}

// redactURL hides any password or token in a comma-separated URL list, so
// that it can be printed.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, s := range parts {
		if at := strings.LastIndex(s, "@"); at >= 0 {
			start := strings.Index(s, "://")
			if start < 0 {
				start = 0
			} else {
				start += 3
			}
			if start <= at {
				parts[i] = s[:start] + "***" + s[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// unwrapPath turns "stat x: no such file or directory" into "no such file
// or directory", since the caller names the path already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
