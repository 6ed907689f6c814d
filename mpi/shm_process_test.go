//go:build linux

package mpi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gorun-hpc/gorun/internal/shm"
	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/mpi"
)

func init() {
	processCases["suiteshm"] = func(ctx context.Context, c *mpi.Comm) error {
		if err := onRings(c); err != nil {
			return err
		}
		return suite(ctx, c)
	}
	processCases["shmkill"] = func(ctx context.Context, c *mpi.Comm) error {
		if err := onRings(c); err != nil {
			return err
		}
		if c.Rank() == 1 {
			if err := c.Send(ctx, 0, 0, []byte("before")); err != nil {
				return err
			}
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		if b, _, err := c.Recv(ctx, 1, 0); err != nil || string(b) != "before" {
			return fmt.Errorf("the message before the kill: %q, %v", b, err)
		}
		_, _, err := c.Recv(ctx, 1, 0)
		if !errors.Is(err, mpi.ErrPeerLost) {
			return fmt.Errorf("a Recv from the killed rank: %v, want ErrPeerLost", err)
		}
		fmt.Println("recv from the killed rank:", err)
		return nil
	}
}

// TestProcessesShared runs the conformance suite with real OS processes on
// one shared-memory segment, as gorun starts the ranks of one host
// (GORUN_SHM, GORUN_LOCAL_RANK): each checks that every peer takes the
// rings.
func TestProcessesShared(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			path, err := shm.NewPath("")
			if err != nil {
				t.Fatal(err)
			}
			if err := shm.Create(path, n); err != nil {
				t.Fatal(err)
			}
			defer shm.Remove(path)
			runProcesses(t, n, "suiteshm", func(r int) []string {
				return []string{mpi.EnvSharedMemory + "=" + path, mpi.EnvLocalRank + "=" + strconv.Itoa(r), mpi.EnvLocalSize + "=" + strconv.Itoa(n)}
			})
		})
	}
}

// TestProcessShmPeerKilled: a rank on the rings that is SIGKILLed says no
// bye; its peer, blocked in Recv from it, still gets what it sent before,
// and then fails with ErrPeerLost once its poller finds the process gone,
// with no launcher to end the job.
func TestProcessShmPeerKilled(t *testing.T) {
	testbin.MultiProcess(t)
	path, err := shm.NewPath("")
	if err != nil {
		t.Fatal(err)
	}
	if err := shm.Create(path, 2); err != nil {
		t.Fatal(err)
	}
	defer shm.Remove(path)
	token := "tok-" + uuid.NewString()
	s := startServer(t, token)
	job := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var outs [2]bytes.Buffer
	var cmds [2]*exec.Cmd
	for r := range 2 {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envCase+"=shmkill",
			mpi.EnvRank+"="+strconv.Itoa(r), mpi.EnvSize+"=2", mpi.EnvJobID+"="+job,
			mpi.EnvNATSURL+"="+s.ClientURL(), mpi.EnvNATSToken+"="+token,
			mpi.EnvSharedMemory+"="+path, mpi.EnvLocalRank+"="+strconv.Itoa(r), mpi.EnvLocalSize+"=2")
		cmd.Stdout, cmd.Stderr = &outs[r], &outs[r]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = cmd
	}
	err1 := cmds[1].Wait()
	err0 := cmds[0].Wait()
	if ws, ok := cmds[1].ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("rank 1 ended with %v, want SIGKILL; output:\n%s", err1, outs[1].String())
	}
	if err0 != nil || !strings.Contains(outs[0].String(), "recv from the killed rank") {
		t.Fatalf("rank 0: %v; output:\n%s", err0, outs[0].String())
	}
	t.Log(strings.TrimSpace(outs[0].String()))
}
