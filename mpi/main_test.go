package mpi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
)

// mainMode, when set in a re-run of this test binary, makes TestMain's
// process a program written with mpi.Main.
const mainMode = "GORUN_TEST_MAIN_MODE"

func init() {
	switch os.Getenv(mainMode) {
	case "":
		return
	case "must":
		mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
			fmt.Println("before")
			mpi.Check(world.Send(ctx, 5, 0, nil)) // no rank 5 in a world of one
			fmt.Println("after")
			return nil
		})
	case "error":
		mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
			return errors.New("bad input")
		})
	case "ok":
		mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
			fmt.Println("rank", world.Rank(), "of", world.Size())
			return nil
		})
	case "panic":
		mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
			panic("not Must's")
		})
	}
	os.Exit(0)
}

// TestMainExits: mpi.Main runs a program; an error it returns, or a call
// that Must stops on, is printed on stderr and exits 1; success
// exits 0; a panic of the program's own stays a panic.
func TestMainExits(t *testing.T) {
	for _, tc := range []struct {
		mode, out, errText string
		code               int
	}{
		{"ok", "rank 0 of 1\n", "", 0},
		{"must", "before\n", "mpi: send: rank 5 not in [0, 1)", 1},
		{"error", "", "bad input", 1},
		{"panic", "", "panic: not Must's", 2},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), mainMode+"="+tc.mode)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || stdout.String() != tc.out || !strings.Contains(stderr.String(), tc.errText) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, and %q in stderr", code, stdout.String(), stderr.String(), tc.code, tc.out, tc.errText)
			}
		})
	}
}

// Must outside Main panics with an error that wraps the call's.
func TestMustOutsideMain(t *testing.T) {
	defer func() {
		err, ok := recover().(error)
		if !ok || !errors.Is(err, mpi.ErrRank) {
			t.Errorf("Must panicked with %v, want an error wrapping ErrRank", err)
		}
	}()
	mpi.Must(0, fmt.Errorf("x: %w", mpi.ErrRank))
	t.Error("Must returned")
}
