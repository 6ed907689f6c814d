package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/launcher"
)

// version is gorun's version; a release build sets it with
// -ldflags "-X main.version=v1.2.3", else the module version is used.
var version = ""

// newFlagSet defines gorun's flags on cfg. Flags use mpirun's names where
// mpirun has one; the standard flag package takes -flag and --flag alike,
// and flags stop at the program's name.
func newFlagSet(cfg *launcher.Config, showVersion *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("gorun", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed by gorun, in one line
	fs.Usage = func() {}

	fs.IntVar(&cfg.N, "n", cfg.N, "run `N` ranks (default: the number of CPUs, here "+fmt.Sprint(runtime.NumCPU())+")")
	fs.IntVar(&cfg.N, "np", cfg.N, "run `N` ranks, as -n does")
	fs.BoolVar(&cfg.TagOutput, "tag-output", false, `prefix each line of output with its rank, as "[3] "`)
	fs.Var((*notBool)(&cfg.NoSharedMemory), "shm", "ranks of one host talk through shared memory (GORUN_SHM), the bus between hosts;\n"+
		"--shm=false sends every message through the bus (default true)")
	fs.Func("x", "give every rank `VAR=VALUE`, or VAR with gorun's value of it (repeatable)", func(s string) error {
		cfg.Env = append(cfg.Env, s)
		return nil
	})
	fs.StringVar(&cfg.OnFailure, "on-failure", launcher.OnFailureAbort, "what a failing rank does, `MODE`: abort (the default) ends the job; continue goes on without a failed rank other than 0 (the others are told, and pool re-runs its tasks)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "stop the job when it runs longer than `DURATION` (e.g. 90s, 5m), exit 124")
	fs.Var((*secondsValue)(&cfg.HangReport), "hang-report", "print where every rank is blocked, and the verdict, once every running rank has been\n"+
		"blocked in gorun's calls for `SECONDS` (or a duration: 90s, 5m); 0 turns it off (default 30)")
	fs.BoolVar(&cfg.Stats, "stats", false, "print each rank's messages, bytes, largest message and blocked time per call at the end")
	fs.StringVar(&cfg.Trace, "trace", "", "write the job's timeline to `FILE` (Chrome trace-event JSON: open it in Perfetto)")
	fs.IntVar(&cfg.TraceSize, "trace-size", cfg.TraceSize, "with --trace, keep each rank's last `N` events")
	fs.StringVar(&cfg.WorkDir, "wdir", "", "start the ranks in `DIR` (default: the current directory)")
	fs.StringVar(&cfg.NATSURL, "nats", "", "use the NATS server at `URL` (a comma-separated list for a cluster; tls:// for TLS)\n"+
		"instead of the embedded one; a token may come from GORUN_NATS_TOKEN")
	fs.StringVar(&cfg.NATSCreds, "nats-creds", "", "connect to the --nats server with the user JWT and seed in `FILE` (.creds)")
	fs.StringVar(&cfg.NATSCA, "nats-ca", "", "trust the --nats server's certificate if signed by the CA in `FILE` (PEM)")
	fs.StringVar(&cfg.NATSCert, "nats-cert", "", "present the client certificate in `FILE` (PEM) to the --nats server")
	fs.StringVar(&cfg.NATSKey, "nats-key", "", "the key of --nats-cert, in `FILE` (PEM)")
	fs.StringVar(&cfg.NATSAccountKey, "nats-account-key", "", "mint for each job one user per rank, allowed only that rank's subjects,\n"+
		"with the account signing key (nkey seed) in `FILE`: jobs on a shared server are then isolated")
	fs.StringVar(&cfg.NATSAccount, "nats-account", "", "the account `ID` (public key) --nats-account-key signs for, if it is a signing key")
	fs.BoolVar(&cfg.Verbose, "v", false, "say what gorun is doing, on stderr")
	fs.BoolVar(showVersion, "version", false, "print gorun's version and exit")
	return fs
}

// secondsValue is a flag.Value of whole seconds, or a duration.
type secondsValue time.Duration

func (v *secondsValue) String() string {
	if v == nil {
		return "0"
	}
	return time.Duration(*v).String()
}

func (v *secondsValue) Set(s string) error {
	d, err := parseSeconds(s)
	if err == nil {
		*v = secondsValue(d)
	}
	return err
}

func (v *secondsValue) Get() any { return *v }

// parseSeconds reads a whole number of seconds, or a duration.
func parseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("must not be negative")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want seconds (30) or a duration (30s, 5m)")
	}
	return d, nil
}

// usage prints the help text, with every flag of fs.
func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `gorun runs an MPI-style job: N copies (ranks) of one Go program that talk
over NATS, on a NATS server gorun embeds for the job.

Usage:
  gorun [flags] PROGRAM [args...]
  gorun init [DIR]      start a project that uses gorun in DIR (see gorun init --help)

PROGRAM is a Go package directory, a .go file (both built once with go build)
or an executable. Flags stop at PROGRAM: what follows goes to every rank.

Examples:
  gorun -n 8 ./examples/ring           build and run 8 ranks of a package
  gorun -n 4 --tag-output ./sim.go     prefix each output line with "[rank] "
  gorun -np 16 -x OMP_NUM_THREADS=1 ./bin/solver -steps 100
  gorun -n 4 --timeout 10m ./job       stop the job after 10 minutes (exit 124)
  gorun -n 64 --nats nats://bus:4222 ./job   use an existing NATS server

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		line := "  " + dashed(f.Name)
		if name != "" {
			line += " " + name
		}
		text = strings.ReplaceAll(text, "\n", "\n    \t")
		fmt.Fprintf(w, "%s\n    \t%s\n", line, text)
	})
	fmt.Fprint(w, `
Each rank gets GORUN_RANK, GORUN_SIZE, GORUN_LOCAL_RANK, GORUN_LOCAL_SIZE,
GORUN_JOB_ID, GORUN_NATS_URL, GORUN_NATS_CREDS (its own key, never printed)
and GORUN_CONTROL_FD (its socket to gorun) in its environment; GORUN_TRACE
with --trace; with --nats, GORUN_NATS_TOKEN (a token gorun was given in its
own environment) and GORUN_NATS_CA, GORUN_NATS_CERT, GORUN_NATS_KEY (TLS).
Standard input goes to rank 0. Output reaches gorun's whole lines at a time;
gorun's own lines start "gorun: ", and a rank's line that starts so is shown
with the rank's tag ("[3] gorun: ..."), so that it cannot pass for gorun's.

Exit status: 0 when every rank exits 0; a failed rank's own code (128+signal
if a signal killed it); 124 when --timeout passes; 130 or 143 when SIGINT or
SIGTERM stops gorun (press Ctrl-C twice to kill at once); 1 when gorun cannot
run the job (missing program, build error, NATS unreachable); 2 for a bad
command line.
`)
}

// versionString is gorun's version line.
func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("gorun %s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// notBool is a boolean flag that sets the opposite of its value: --shm
// sets Config.NoSharedMemory.
type notBool bool

func (b *notBool) String() string {
	if b == nil {
		return "true"
	}
	return strconv.FormatBool(!bool(*b))
}

func (b *notBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = notBool(!v)
	return nil
}

func (b *notBool) IsBoolFlag() bool { return true }
