package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/wait"
)

// syncBuffer is a bytes.Buffer safe to read while Run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is a local job of n ranks writing into buffers.
func testConfig(n int) (Config, *syncBuffer, *syncBuffer) {
	cfg := DefaultConfig()
	cfg.N = n
	cfg.Stdin = nil
	var stdout, stderr syncBuffer
	cfg.Stdout, cfg.Stderr = &stdout, &stderr
	return cfg, &stdout, &stderr
}

// gone says whether no live process has pid: none at all, or (on Linux,
// from /proc) a zombie.
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return runtime.GOOS == "linux" // gone since the signal; elsewhere there is no /proc
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// waitGone fails t unless every pid is gone within d.
func waitGone(t *testing.T, pids []int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, pid := range pids {
		if !wait.For(time.Until(deadline), func() bool { return gone(pid) }) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still runs", pid)
		}
	}
}

// pidsIn reads the "pid N" lines of out.
func pidsIn(t *testing.T, out string) []int {
	t.Helper()
	var pids []int
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "pid "); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("bad line %q", l)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// Cancelling ctx stops the job: every rank gone, an error saying why.
func TestRunContextCancel(t *testing.T) {
	cfg, stdout, _ := testConfig(3)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, cfg, "sh", "-c", "echo pid $$; exec sleep 60") }()
	if !wait.For(30*time.Second, func() bool { return strings.Count(stdout.String(), "pid ") >= 3 }) {
		t.Fatal("ranks did not start")
	}
	cancel(errors.New("enough"))
	start := time.Now()
	err := <-done
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run returned %v after cancel", d)
	}
	if ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "job cancelled: enough") {
		t.Errorf("Run: %v (code %d), want a cancelled job, code 1", err, ExitCode(err))
	}
	waitGone(t, pidsIn(t, stdout.String()), 0)
}

// A rank that leaves a background process behind and exits 0: the process
// is killed with its rank's process group, so the job ends at once.
func TestRunKillsLeftovers(t *testing.T) {
	cfg, stdout, stderr := testConfig(2)
	start := time.Now()
	err := Run(context.Background(), cfg, "sh", "-c", "sleep 60 & echo pid $!")
	if err != nil {
		t.Fatalf("Run: %v; stderr %s", err, stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v", d)
	}
	pids := pidsIn(t, stdout.String())
	if len(pids) != 2 {
		t.Fatalf("stdout %q", stdout)
	}
	waitGone(t, pids, time.Second)
}

// A rank that cannot start fails the job with code 1, and says why.
func TestRunCannotStart(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("\x00\x01\x02 not a program"), 0o755)
	cfg, _, _ := testConfig(3)
	err := Run(context.Background(), cfg, bad)
	if ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "rank 0 (on host") || !strings.Contains(err.Error(), "could not start") {
		t.Fatalf("Run: %v (code %d), want rank 0 could not start, code 1", err, ExitCode(err))
	}
}

// A regular file as Stdin is given to rank 0 directly; the others read
// nothing.
func TestRunStdinFile(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	os.WriteFile(in, []byte("from a file\n"), 0o644)
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, stdout, stderr := testConfig(3)
	cfg.Stdin = f
	cfg.TagOutput = true
	if err := Run(context.Background(), cfg, "cat"); err != nil {
		t.Fatalf("Run: %v; %s", err, stderr)
	}
	if got := stdout.String(); got != "[0] from a file\n" {
		t.Fatalf("stdout %q", got)
	}
}

// --timeout with a rank that ignores SIGTERM: SIGKILL after the grace.
func TestRunTimeoutKillsAfterGrace(t *testing.T) {
	cfg, stdout, _ := testConfig(2)
	cfg.Timeout = 300 * time.Millisecond
	cfg.StopGrace = 200 * time.Millisecond
	start := time.Now()
	err := Run(context.Background(), cfg, "sh", "-c", `trap "" TERM; echo pid $$; while :; do sleep 0.05; done`)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v", d)
	}
	if ExitCode(err) != ExitTimeout || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("Run: %v (code %d), want a timeout, 124", err, ExitCode(err))
	}
	waitGone(t, pidsIn(t, stdout.String()), time.Second)
}

// The local spawner kills a rank that starts after stop was called (a
// failure elsewhere while ranks were still starting).
func TestLocalSpawnerStopBeforeStart(t *testing.T) {
	s := newLocalSpawner()
	s.stop(true)
	plan, err := MakePlan([]Host{{Name: "localhost", Slots: 2}}, 2, "slot", false)
	if err != nil {
		t.Fatal(err)
	}
	out := newOutput(&syncBuffer{}, &syncBuffer{}, false)
	exits := make(chan rankExit, 2)
	s.start(context.Background(), &spawnSpec{
		Plan: &plan, Procs: plan.Procs, Path: "/bin/sh", Args: []string{"-c", "sleep 60"},
		Job: jobInfo{ID: "x", NATSURL: "nats://127.0.0.1:1"}, Out: out,
	}, exits)
	var got []syscall.Signal
	for range 2 {
		select {
		case x := <-exits:
			got = append(got, x.Signal)
		case <-time.After(10 * time.Second):
			t.Fatal("a rank started after stop still runs")
		}
	}
	if !slices.Equal(got, []syscall.Signal{syscall.SIGKILL, syscall.SIGKILL}) {
		t.Fatalf("signals %v, want SIGKILL twice", got)
	}
	out.wait(time.Second)
}

// With a cancelled ctx the spawner starts nothing and says so for each rank.
func TestLocalSpawnerCancelled(t *testing.T) {
	plan, _ := MakePlan([]Host{{Name: "localhost", Slots: 3}}, 3, "slot", false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	exits := make(chan rankExit, 3)
	newLocalSpawner().start(ctx, &spawnSpec{Plan: &plan, Procs: plan.Procs, Path: "/bin/true", Out: newOutput(nil, nil, false)}, exits)
	for range 3 {
		if x := <-exits; !x.NotStarted || x.failed() {
			t.Fatalf("%+v: want NotStarted", x)
		}
	}
}
