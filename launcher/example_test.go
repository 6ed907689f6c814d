package launcher_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/gorun-hpc/gorun/launcher"
)

func ExampleConfig_Validate() {
	cfg := launcher.DefaultConfig()
	cfg.N = 0
	fmt.Println(cfg.Validate())

	cfg.N = 4
	cfg.Env = []string{"OMP_NUM_THREADS=1", "GORUN_RANK=7"}
	fmt.Println(cfg.Validate())

	cfg.Env = []string{"OMP_NUM_THREADS=1", "HOME"}
	fmt.Println(cfg.Validate())
	// Output:
	// -n 0: the number of ranks must be at least 1
	// -x "GORUN_RANK=7": GORUN_RANK is set by gorun itself
	// <nil>
}

// Run a job of three ranks of a shell command; each line of output is
// prefixed with its rank.
func ExampleRun() {
	cfg := launcher.DefaultConfig()
	cfg.N = 3
	cfg.TagOutput = true
	err := launcher.Run(context.Background(), cfg, "sh", "-c", `echo "rank $GORUN_RANK of $GORUN_SIZE"`)
	fmt.Println("exit status", launcher.ExitCode(err))
	// Unordered output:
	// [0] rank 0 of 3
	// [1] rank 1 of 3
	// [2] rank 2 of 3
	// exit status 0
}

// A failing rank ends the job; Run's error says which rank, and ExitCode is
// that rank's exit status.
func ExampleExitCode() {
	cfg := launcher.DefaultConfig()
	cfg.N = 4
	err := launcher.Run(context.Background(), cfg, "sh", "-c", `[ "$GORUN_RANK" = 2 ] && exit 7; sleep 60`)
	var ee *launcher.ExitError
	fmt.Println(errors.As(err, &ee), launcher.ExitCode(err))
	// Output: true 7
}

// A Go package is built once into a temporary directory; Remove deletes it.
func ExamplePrepareProgram() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.WriteFile(dir+"/main.go", []byte("package main\n\nfunc main() {}\n"), 0o644)

	p, err := launcher.PrepareProgram(context.Background(), dir, os.Stderr)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, statErr := os.Stat(p.Path)
	fmt.Println("built:", p.Built, statErr == nil)
	p.Remove()
	_, statErr = os.Stat(p.Path)
	fmt.Println("removed:", os.IsNotExist(statErr))
	// Output:
	// built: true true
	// removed: true
}

func ExampleDefaultConfig() {
	cfg := launcher.DefaultConfig()
	fmt.Println(cfg.N == runtime.NumCPU(), cfg.NATSHost, cfg.StopGrace, cfg.Validate())
	// Output: true 127.0.0.1 500ms <nil>
}
