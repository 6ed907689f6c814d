package launcher

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

// daemon is a shell command that starts a daemon in a session of its own,
// with an empty environment and none of the rank's descriptors (nothing
// says whose job it is), waits until it is in that session (out of the
// rank's process group, which ends with the rank), prints "pid PID",
// then sleeps d seconds.
func daemon(d string) string {
	return `env -i setsid sh -c 'exec >/dev/null 2>&1 3>&-; exec sleep 60' &
until [ "$(cut -d' ' -f6 /proc/$!/stat)" = $! ]; do sleep 0.01; done
echo pid $!; sleep ` + d
}

// A rank that exits 0 and leaves a child in a session of its own, with
// its environment cleared, holding its stdout, stderr and control socket:
// Run returns at once (outputDrain after the rank ended, the child killed
// as what held its streams), and the child is gone. Another job runs in
// this process meanwhile, so that nothing but its holding the streams
// tells whose the child is.
func TestRunRankStreamsHeld(t *testing.T) {
	otherJob(t)
	cfg, stdout, stderr := testConfig(1)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- Run(context.Background(), cfg, "sh", "-c", "env -i setsid sleep 60 & echo pid $!; sleep 0.2")
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v; stderr %s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Run still waits for the rank's streams; stdout %q", stdout)
	}
	t.Logf("Run returned after %v", time.Since(start).Round(time.Millisecond))
	pids := pidsIn(t, stdout.String())
	if len(pids) != 1 {
		t.Fatalf("stdout %q", stdout)
	}
	waitGone(t, pids, time.Second)
}

// otherJob runs a job of one sleeping rank in this process until t ends.
func otherJob(t *testing.T) {
	t.Helper()
	cfg, stdout, _ := testConfig(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, "sh", "-c", "echo pid $$; exec sleep 60") }()
	t.Cleanup(func() { cancel(); <-done })
	testbin.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(stdout.String(), "pid ") }, "the other job running")
}

// Run's orphans, sweep's third rule: a daemon that cleared its
// environment and closed the rank's streams is found only as an orphan
// this process adopted. While two jobs run in this process, the one that
// ends first leaves the other's orphan alone (it cannot tell whose it is,
// even one that started after its own ranks); the other ends it when it
// ends, alone then.
func TestSweepOrphansOneJob(t *testing.T) {
	// Job B: its rank runs until the test creates a file.
	flag := filepath.Join(t.TempDir(), "go")
	cfgB, stdoutB, stderrB := testConfig(1)
	doneB := make(chan error, 1)
	go func() {
		doneB <- Run(context.Background(), cfgB, "sh", "-c", "echo pid $$; until [ -e "+flag+" ]; do sleep 0.01; done")
	}()
	testbin.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(stdoutB.String(), "pid ") }, "job B running")

	// Job A: rank 0 sleeps until cancelled, rank 1 starts a daemon and exits.
	cfgA, stdoutA, _ := testConfig(2)
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	doneA := make(chan error, 1)
	go func() {
		doneA <- Run(ctxA, cfgA, "sh", "-c", `if [ "$GORUN_RANK" = 1 ]; then `+daemon("0")+`; else exec sleep 60; fi`)
	}()
	var orphan int
	self := os.Getpid()
	testbin.WaitFor(t, 30*time.Second, func() bool {
		pids := pidsIn(t, stdoutA.String())
		if len(pids) == 0 {
			return false
		}
		orphan = pids[0]
		p, ok := readStat(orphan)
		return ok && p.ppid == self // adopted: its rank has ended
	}, "job A's daemon adopted by this process")

	// Job B ends, and leaves A's orphan alone.
	os.WriteFile(flag, nil, 0o644)
	if err := <-doneB; err != nil {
		t.Fatalf("job B: %v; stderr %s", err, stderrB)
	}
	if gone(orphan) {
		t.Fatal("job B's sweep killed job A's orphan")
	}

	cancelA()
	select {
	case <-doneA:
	case <-time.After(30 * time.Second):
		t.Fatal("job A did not end")
	}
	waitGone(t, []int{orphan}, time.Second)
}

// A single job's orphan that says nothing of its job is ended when the
// job ends.
func TestSweepOrphan(t *testing.T) {
	cfg, stdout, stderr := testConfig(1)
	if err := Run(context.Background(), cfg, "sh", "-c", daemon("0.2")); err != nil {
		t.Fatalf("Run: %v; stderr %s", err, stderr)
	}
	pids := pidsIn(t, stdout.String())
	if len(pids) != 1 {
		t.Fatalf("stdout %q", stdout)
	}
	waitGone(t, pids, time.Second)
}

// readProcs and readStat read what sweep and the keeper need: this
// process's parent, group, session and a start time that does not change.
func TestReadStat(t *testing.T) {
	p, ok := readStat(os.Getpid())
	if !ok || p.ppid != os.Getppid() || p.start == 0 || p.state == 0 {
		t.Fatalf("readStat(self) = %+v, %v", p, ok)
	}
	q := readProcs()[os.Getpid()]
	q.state = p.state // running or sleeping: it may differ between reads
	if q != p {
		t.Fatalf("readProcs has %+v for this process, readStat %+v", q, p)
	}
}

// BenchmarkLineageRecord is what a keeper pays every lineagePoll: one
// record of its parent's process tree (a read of every /proc/PID/stat).
func BenchmarkLineageRecord(b *testing.B) {
	l := newLineage(os.Getppid())
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0 := cpu()
	for b.Loop() {
		l.record()
	}
	// CPU time, not wall: what the keeper takes from the ranks' cores.
	b.ReportMetric(float64((cpu()-c0).Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(len(readProcs())), "procs")
}

// The sweep at a job's end reads only the processes with pids from the
// job's first rank's on (newerProcs), where the pids have not wrapped
// around since (newerOnly): a child started after a given pid is among
// them, and pid 1 is not; a first pid above the last one handed out
// (wrapped), or a job older than pidRound, takes every process.
func TestNewerProcs(t *testing.T) {
	self := os.Getpid()
	first := exec.Command("sleep", "60")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range []*exec.Cmd{first, child} {
			c.Process.Kill()
			c.Wait()
		}
	})
	f := first.Process.Pid
	if !newerOnly(f, time.Now()) {
		t.Fatalf("pid %d, just started: the pids have wrapped, says newerOnly", f)
	}
	tab := newerProcs(f, self)
	for _, pid := range []int{self, f, child.Process.Pid} {
		if _, ok := tab[pid]; !ok {
			t.Errorf("pid %d missing from newerProcs(%d): %v", pid, f, tab)
		}
	}
	if _, ok := tab[1]; ok && f > 1 {
		t.Errorf("newerProcs(%d) read pid 1", f)
	}
	if newerOnly(f, time.Now().Add(-pidRound)) {
		t.Error("a job as old as pidRound: newerOnly still trusts the pids")
	}
	if newerOnly(1<<30, time.Now()) {
		t.Error("a first pid above the last handed out (the pids wrapped): newerOnly still trusts them")
	}
}

// TestOnlyKeepers: sweep skips reading the process table where this
// process's only children are keepers, and not where it has another
// child (one that runs, or one that ended and is not reaped yet). Run in
// a process of its own (this test binary started again), whose children
// the test knows.
func TestOnlyKeepers(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GORUN_TEST_ONLY_KEEPERS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the helper: %v; said %q", err, out)
	}
	if got, want := strings.Join(strings.Fields(string(out)), " "), "keeper:true sleeping:false ended:false reaped:true"; got != want {
		t.Fatalf("onlyKeepers said %s, want %s", got, want)
	}
}

// TestOnlyKeepers's helper: with GORUN_TEST_ONLY_KEEPERS set, this test
// binary starts a keeper, then a child that sleeps, and says what
// onlyKeepers answers at each step.
func init() {
	if os.Getenv("GORUN_TEST_ONLY_KEEPERS") == "" {
		return
	}
	k := startKeeper(fmt.Sprintf("onlykeepers-%d", os.Getpid()))
	if k == nil {
		fmt.Fprintln(os.Stderr, "no keeper")
		os.Exit(1)
	}
	fmt.Printf("keeper:%v\n", onlyKeepers())
	c := exec.Command("sleep", "30")
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("sleeping:%v\n", onlyKeepers())
	c.Process.Kill()
	for {
		if p, ok := readStat(c.Process.Pid); ok && p.state == 'Z' {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("ended:%v\n", onlyKeepers())
	c.Wait()
	fmt.Printf("reaped:%v\n", onlyKeepers())
	k.release()
	os.Exit(0)
}
