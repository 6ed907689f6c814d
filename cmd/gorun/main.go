// Command gorun runs an MPI-style job of Go processes that talk over NATS.
//
//	gorun [flags] PROGRAM [args...]
//	gorun init [DIR]
//
// PROGRAM is a Go package directory, a .go file or an executable; Go
// sources are built once, then N ranks of it run with the launch contract's
// GORUN_* environment, on a NATS server gorun embeds (or one named with
// --nats). Run "gorun --help" for the flags. gorun init makes a new
// project that uses gorun's packages.
//
// gorun exits 0 when every rank exits 0; with a failed rank's own exit code
// (128+signal for a rank killed by a signal) when one fails; 124 when
// --timeout passes; 130 or 143 when SIGINT or SIGTERM stops it; 1 when it
// cannot run the job at all and 2 for a bad command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	_ "github.com/gorun-hpc/gorun/internal/warmup" // crypto tables, made as gorun starts
	"github.com/gorun-hpc/gorun/launcher"
)

// serverGCPercent is gorun's own GOGC, unless the environment sets one.
// The embedded server's live heap is small and its garbage is the buffers
// of large messages in transit: collecting less often, and so giving back
// and faulting in fewer pages, made an 8-rank Allreduce of 8 MB about 12%
// faster on 2 cores. The ranks keep the default. serverMemoryLimit (unless
// GOMEMLIMIT is set) makes gorun collect whenever its heap nears 1 GiB,
// whatever GOGC says, so that a server holding much data in flight does not
// also hold four times as much garbage.
const (
	serverGCPercent   = 400
	serverMemoryLimit = 1 << 30
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == launcher.AgentArg {
		// A host agent, started by a gorun on another host over ssh.
		os.Exit(launcher.RunAgent(os.Stdin, os.Stdout, os.Stderr))
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serverMemoryLimit)
	}
	os.Exit(gorun(os.Args[1:], os.Stdout, os.Stderr))
}

// gorun is the whole command; it returns the exit status.
func gorun(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "init" {
		// gorun init [DIR] (init.go); a program named init is ./init.
		return initCommand(args[1:], stdout, stderr)
	}
	cfg := launcher.DefaultConfig()
	cfg.Signals = true
	cfg.Stdout, cfg.Stderr = stdout, stderr
	var showVersion bool
	fs := newFlagSet(&cfg, &showVersion)
	hosts := addHostFlags(fs, &cfg)             // flags_hosts.go
	if err := checkArgs(fs, args); err != nil { // flagerr.go
		fmt.Fprintf(stderr, "gorun: %v (see gorun --help)\n", err)
		return launcher.ExitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return launcher.ExitOK
		}
		fmt.Fprintf(stderr, "gorun: %v (see gorun --help)\n", err)
		return launcher.ExitUsage
	}
	if showVersion {
		fmt.Fprintln(stdout, versionString())
		return launcher.ExitOK
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "gorun: no program to run (see gorun --help)")
		return launcher.ExitUsage
	}
	if cfg.N < 1 && flagSet(fs, "np") && !flagSet(fs, "n") {
		// The launcher says -n: name the flag as the user typed it.
		fmt.Fprintf(stderr, "gorun: -np %d: the number of ranks must be at least 1 (see gorun --help)\n", cfg.N)
		return launcher.ExitUsage
	}
	why, err := hosts.apply(&cfg, flagSet(fs, "n", "np"))
	if err != nil {
		fmt.Fprintf(stderr, "gorun: %v\n", err)
		return launcher.ExitUsage
	}
	if cfg.Verbose {
		fmt.Fprintf(stderr, "gorun: %s\n", why)
	}
	err = launcher.Run(context.Background(), cfg, fs.Arg(0), fs.Args()[1:]...)
	if err != nil {
		fmt.Fprintf(stderr, "gorun: %v\n", err)
	}
	return launcher.ExitCode(err)
}
