package pool_test

// Multi-process tests: the real gorun runs testdata/mapprog, built with the
// race detector, as real rank processes on its embedded NATS server.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/internal/trace/tracecheck"
)

var bin struct{ gorun string }

func TestMain(m *testing.M) {
	if !testingShort() {
		testbin.Main(m, "gorun-pool-", testbin.Prog{Out: &bin.gorun, Pkg: "../cmd/gorun"})
	}
	os.Exit(m.Run())
}

// mapprog builds testdata/mapprog with the race detector, so that a data
// race in any rank process fails its job (the go build cache makes this
// cheap after the first time).
func mapprog(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "mapprog")
	if b, err := exec.Command("go", "build", "-race", "-o", out, "./testdata/mapprog").CombinedOutput(); err != nil {
		t.Fatalf("go build -race ./testdata/mapprog: %v\n%s", err, b)
	}
	return out
}

// testingShort is testing.Short before flag parsing has happened in m.Run.
func testingShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

func gorun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin.gorun, append([]string{"--timeout", "2m"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gorun %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func okLine(t *testing.T, out, want string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "mapprog: OK:") && strings.Contains(l, want) {
			t.Log(l)
			return
		}
	}
	t.Fatalf("no \"mapprog: OK:\" line containing %q in:\n%s", want, out)
}

// TestProcessesMap: Map on 0, 1, n-1 and 1000 inputs of ints and structs,
// between real processes, for n = 1, 2, 3, 5, 8.
func TestProcessesMap(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := mapprog(t)
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := gorun(t, "-n", fmt.Sprint(n), prog, "map")
			okLine(t, out, fmt.Sprintf("%d ranks, inputs", n))
		})
	}
}

// TestProcessesTaskError: task 57 of 200 fails; every process returns a
// TaskError naming it and its rank within a second.
func TestProcessesTaskError(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := mapprog(t)
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			out := gorun(t, "-n", fmt.Sprint(n), prog, "fail57")
			okLine(t, out, "task 57 failed on rank ")
		})
	}
}

// gorunExit runs gorun and returns its exit status, stdout and stderr.
func gorunExit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin.gorun, append([]string{"--timeout", "2m"}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("gorun %s: %v", strings.Join(args, " "), err)
	return 0, "", ""
}

// TestProcessesTaskPanic: task 57 panics in a real rank process; the
// process lives, every rank returns a TaskError naming task 57, the rank
// that ran it and the panic's message and line, and the job (whose ranks
// fail with that error) exits 1 naming it.
func TestProcessesTaskPanic(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := mapprog(t)
	const n = 3
	code, stdout, stderr := gorunExit(t, "-n", strconv.Itoa(n), prog, "panic57")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	line := regexp.MustCompile(`(?m)^mapprog: rank (\d): pool: task 57 \(on rank (\d)\): panic: task 57 exploded \(at main\.go:\d+\)$`)
	got := line.FindAllStringSubmatch(stdout, -1)
	ranks := map[string]bool{}
	for _, m := range got {
		ranks[m[1]] = true
		if m[2] != got[0][2] {
			t.Errorf("ranks disagree on where task 57 ran: %q", stdout)
		}
	}
	if len(ranks) != n {
		t.Errorf("%d ranks returned the panic's TaskError, want %d:\n%s", len(ranks), n, stdout)
	}
	if !strings.Contains(stderr, "task 57 (on rank") || !strings.Contains(stderr, "panic: task 57 exploded") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("gorun's stderr does not name the panic as the job's failure, or has a stack trace:\n%s", stderr)
	}
}

// TestProcessesTraceStats: a job of Map calls under --trace and --stats
// shows each call as itself: one Map slice per call on every rank, with
// the tasks the rank ran (which add up to the tasks of the job), and
// none of the messages and Waits it is made of; the trace is one that
// Perfetto reads as promised (tracecheck); --stats counts the Map calls
// with the time they waited, not 0.
func TestProcessesTraceStats(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := mapprog(t)
	const n = 3
	path := filepath.Join(t.TempDir(), "trace.json")
	code, stdout, stderr := gorunExit(t, "-n", strconv.Itoa(n), "--trace", path, "--stats", prog, "map")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	okLine(t, stdout, "3 ranks, inputs [0 1 2 1000]")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := tracecheck.Check(b)
	if err != nil {
		t.Fatalf("Perfetto would not read the trace as promised: %v", err)
	}
	maps := map[uint32]int{}
	tasks := 0
	for _, s := range rep.Slices {
		switch s.Name {
		case "Map":
			maps[s.Pid]++
			if k, ok := s.Args["tasks"]; ok {
				v, _ := strconv.Atoi(fmt.Sprint(k))
				tasks += v
			}
		case "Wait", "Isend", "Irecv", "Send", "Recv", "WaitAll", "Dup":
			t.Errorf("rank %d: a %s slice: the Map's own calls show", s.Pid-1, s.Name)
		}
	}
	const calls, total = 8, 2 * (0 + 1 + 2 + 1000) // ints and structs, for 0, 1, 2 and 1000 inputs
	for pid := uint32(1); pid <= n; pid++ {
		if maps[pid] != calls {
			t.Errorf("rank %d: %d Map slices, want %d", pid-1, maps[pid], calls)
		}
	}
	if tasks != total {
		t.Errorf("the Map slices' tasks add up to %d, want %d", tasks, total)
	}
	if rep.Flows != 0 {
		t.Errorf("%d flows: the Map's messages show", rep.Flows)
	}
	stat := regexp.MustCompile(`(?m)^gorun:   rank (\d) calls: (.*)$`)
	rows := stat.FindAllStringSubmatch(stderr, -1)
	if len(rows) != n {
		t.Fatalf("%d ranks' calls in --stats, want %d:\n%s", len(rows), n, stderr)
	}
	mapStat := regexp.MustCompile(`(?:^|, )Map (\d+) \(blocked ([^)]+)\)`)
	for _, row := range rows {
		m := mapStat.FindStringSubmatch(row[2])
		if m == nil || m[1] != strconv.Itoa(calls) {
			t.Errorf("rank %s's calls %q: want Map %d", row[1], row[2], calls)
			continue
		}
		if d, err := time.ParseDuration(m[2]); err != nil || d <= 0 {
			t.Errorf("rank %s's Map calls blocked %s, want more than 0", row[1], m[2])
		}
		if strings.Contains(row[2], "Wait ") || strings.Contains(row[2], "Send ") {
			t.Errorf("rank %s's calls %q: the Map's own calls show", row[1], row[2])
		}
	}
	t.Logf("%s", strings.Join(stat.FindAllString(stderr, -1), "\n"))
}
