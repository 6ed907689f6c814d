package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

// failBound is how soon after a rank fails gorun must have stopped every
// other rank and exited.
const failBound = 2 * time.Second

// Acceptance 2: rank 3 fails (exit 7, SIGKILL, panic, with or without mpi)
// while the others sleep or block in Recv. gorun exits with the rank's code
// within 2 s of the failure, says in one line which rank (with its pid)
// ended how, and leaves no process behind.
func TestRankFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		how   string
		ready string // line every rank prints once it is ready
	}{
		{"exit", []string{"exit", "3", "7"}, 7, "exited with status 7", "pid "},
		{"sigkill", []string{"kill", "3"}, 137, "was killed by signal 9 (SIGKILL)", "pid "},
		{"panic", []string{"panic", "3"}, 2, "exited with status 2 after a panic", "pid "},
		{"exit-others-in-recv", []string{"mpirecv", "3", "7"}, 7, "exited with status 7", "ready"},
		{"abort", []string{"mpiabort", "3", "7"}, 7, "aborted the job with code 7", "ready"},
		// An aborted job never exits 0: codes an exit status cannot carry
		// exit 1, and the message names the code as given.
		{"abort-0", []string{"mpiabort", "3", "0"}, 1, "aborted the job with code 0 (exit status 1: a code outside 1-255 exits 1)", "ready"},
		{"abort-256", []string{"mpiabort", "3", "256"}, 1, "aborted the job with code 256 (exit status 1: a code outside 1-255 exits 1)", "ready"},
		{"abort-512", []string{"mpiabort", "3", "512"}, 1, "aborted the job with code 512 (exit status 1: a code outside 1-255 exits 1)", "ready"},
		{"abort-minus-1", []string{"mpiabort", "3", "-1"}, 1, "aborted the job with code -1 (exit status 1: a code outside 1-255 exits 1)", "ready"},
		// A rank that leaves after Init without closing, while the others
		// wait: the job ends at once, naming it.
		{"exit-0-unclosed", []string{"mpiexit", "3"}, 1, "exited with status 0 after mpi.Init without closing its world (Comm.Close) while other ranks still ran", "ready"},
		{"sigterm-ignored", []string{"ignoreterm-exit", "3", "7"}, 7, "exited with status 7", "pid "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-n", "5", bin.rankprog}, tc.args...)
			j := startJob(t, nil, args...)
			j.waitLines(tc.ready, 5, 30*time.Second)
			pids := rankPids(t, j.lines())
			code := j.wait(30 * time.Second)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, j.errText())
			}
			if took := j.exitAt.Sub(failTime(t, j.lines())); took > failBound {
				t.Errorf("gorun exited %v after rank 3 failed; want at most %v", took, failBound)
			}
			want := fmt.Sprintf("gorun: rank 3 (pid %d on host ", pids[3])
			got := gorunLines(j.errText())
			if len(got) != 1 || !strings.HasPrefix(got[0], want) || !strings.Contains(got[0], ") "+tc.how) {
				t.Errorf("gorun's stderr lines %q: want one %q...%q", got, want, tc.how)
			}
			assertNoneLeft(t, pidList(pids), 0)
		})
	}
}

// TestFakeAbortLine: a rank that prints mpi's abort line on stderr changes
// nothing: when another rank fails (exit 3), gorun exits 3 and blames that
// one. gorun learns of Abort from a rank's control descriptor, never from
// its output.
func TestFakeAbortLine(t *testing.T) {
	j := startJob(t, nil, "-n", "3", bin.rankprog, "fakeabort", "2", "1", "3")
	if code := j.wait(30 * time.Second); code != 3 {
		t.Fatalf("exit %d, want 3; stderr:\n%s", code, j.errText())
	}
	if got := gorunLines(j.errText()); len(got) != 1 || !strings.HasPrefix(got[0], "gorun: rank 1 ") || !strings.Contains(got[0], "exited with status 3") {
		t.Errorf("gorun said %q, want rank 1's exit 3", got)
	}
	if !strings.Contains(j.errText(), "mpi: rank 2 aborted the job with code 42") {
		t.Errorf("the rank's line is not in the output:\n%s", j.errText())
	}
}

// Acceptance 3: SIGINT (or SIGTERM) to gorun while ranks run: everything,
// grandchildren in the ranks' process groups included, gone within 2 s,
// exit 130 (143).
func TestSignalStopsJob(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{
		{syscall.SIGINT, 130},
		{syscall.SIGTERM, 143},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			j := startJob(t, nil, "-n", "4", bin.rankprog, "child")
			j.waitLines("child ", 4, 30*time.Second)
			all := allPids(t, j.waitLines("pid ", 8, 30*time.Second)) // ranks and their grandchildren
			if len(all) != 8 {
				t.Fatalf("want 4 ranks and 4 grandchildren, got pids %v", all)
			}
			sent := time.Now()
			j.cmd.Process.Signal(tc.sig)
			code := j.wait(30 * time.Second)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, j.errText())
			}
			if took := j.exitAt.Sub(sent); took > failBound {
				t.Errorf("gorun exited %v after %v; want at most %v", took, tc.sig, failBound)
			}
			got := gorunLines(j.errText())
			if len(got) != 1 || !strings.Contains(got[0], "interrupted by "+signalText(tc.sig)) {
				t.Errorf("gorun's stderr lines %q: want one saying it was interrupted by %v", got, signalText(tc.sig))
			}
			assertNoneLeft(t, all, 0)
		})
	}
}

func signalText(s syscall.Signal) string {
	if s == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}

// A second Ctrl-C kills at once ranks that ignore SIGTERM, without waiting
// for the grace period.
func TestSecondSIGINTKills(t *testing.T) {
	j := startJob(t, nil, "-n", "3", "-v", bin.rankprog, "ignoreterm")
	j.waitLines("ignoring", 3, 30*time.Second)
	pids := rankPids(t, j.lines())
	j.cmd.Process.Signal(os.Interrupt)
	j.waitStderr("stopping the job", 10*time.Second)
	j.cmd.Process.Signal(os.Interrupt)
	if code := j.wait(30 * time.Second); code != 130 {
		t.Fatalf("exit %d, want 130; stderr:\n%s", code, j.errText())
	}
	// The kill must come from the second SIGINT, before the grace is over.
	stderr := j.errText()
	kill, grace := strings.Index(stderr, "killing every rank"), strings.Index(stderr, "grace of")
	if kill < 0 || (grace >= 0 && grace < kill) {
		t.Errorf("want the second SIGINT to kill at once, not after the grace; stderr:\n%s", stderr)
	}
	assertNoneLeft(t, pidList(pids), 0)
}

// Ranks die with gorun even when gorun is killed by SIGKILL (Pdeathsig),
// and so do their children, in the rank's process group or in a session of
// their own (the keeper ends them), with the job's id in their environment
// or none at all (the keeper knew them as gorun's descendants). The keeper
// itself is gone after.
func TestRanksDieWithGorun(t *testing.T) {
	needLinux(t, "ranks die with a SIGKILLed gorun by Pdeathsig, which only Linux has")
	for _, mode := range []string{"sleep", "child", "setsid-child", "setsid-noenv"} {
		t.Run(mode, func(t *testing.T) {
			j := startJob(t, nil, "-n", "3", bin.rankprog, mode)
			pids := pidList(rankPids(t, j.waitLines("pid ", 3, 30*time.Second)))
			var children []int
			if mode != "sleep" {
				for _, l := range j.waitLines("child ", 3, 30*time.Second) {
					pid, _ := strconv.Atoi(strings.TrimPrefix(l, "child "))
					children = append(children, pid)
				}
			}
			pids = append(pids, children...)
			testbin.WaitFor(t, 30*time.Second, func() bool { return len(keeperPids(j.cmd.Process.Pid)) == 1 }, "one keeper during the job")
			if mode == "setsid-noenv" {
				// Only the keeper's record of gorun's process tree finds
				// them: it must have looked once they ran.
				waitRecorded(t, children)
			}
			j.cmd.Process.Kill()
			j.wait(30 * time.Second)
			assertNoneLeft(t, pids, failBound)
			testbin.WaitFor(t, failBound, func() bool { return len(keeperPids(j.cmd.Process.Pid)) == 0 }, "every keeper gone")
		})
	}
}

// keeperPoll is how often a keeper records its parent's process tree
// (launcher's lineagePoll).
const keeperPoll = 500 * time.Millisecond

// waitRecorded waits until pids (of the root PID namespace) have run for
// two keeper polls: a keeper has recorded them.
func waitRecorded(t *testing.T, pids []int) {
	t.Helper()
	testbin.WaitFor(t, 30*time.Second, func() bool {
		for _, pid := range pids {
			if procAge(pid) < 2*keeperPoll {
				return false
			}
		}
		return true
	}, fmt.Sprintf("%v running for two keeper polls", pids))
}

// procAge is how long pid has run (0 if it is gone), from its start time
// in /proc/PID/stat (clock ticks after boot, 100 a second) and
// /proc/uptime.
func procAge(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	up, err2 := os.ReadFile("/proc/uptime")
	if err != nil || err2 != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	ticks, _ := strconv.ParseFloat(f[19], 64)
	uptime, _ := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	return time.Duration((uptime - ticks/100) * float64(time.Second))
}

// TestRankLeavesChild: a rank that exits 0 leaving a child in a session of
// its own that holds its stdout, stderr and control socket (a shell's
// background job), or one that cleared its environment too, or a daemon
// that closed them all: gorun still reports the rank's end at once (its
// streams are closed outputDrain after it, and what held them killed),
// exits 0, and leaves nothing.
func TestRankLeavesChild(t *testing.T) {
	needLinux(t, "a rank's leftovers found in /proc")
	for _, tc := range []struct{ name, child string }{
		{"setsid", "setsid sleep 300"},
		{"env cleared", "env -i setsid sleep 300"},
		{"daemon", `env -i setsid sh -c 'exec >/dev/null 2>&1 3>&-; exec sleep 300'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			j := startJob(t, nil, "-n", "1", "/bin/sh", "-c", tc.child+" & echo child $!; sleep 0.2; exit 0")
			pid, _ := strconv.Atoi(strings.TrimPrefix(j.waitLines("child ", 1, 30*time.Second)[0], "child "))
			if code := j.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit %d, want 0; stderr:\n%s", code, j.errText())
			}
			t.Logf("gorun exited after %v", j.exitAt.Sub(start).Round(time.Millisecond))
			if state, _, ok := procState(pid); ok && state != 'Z' {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("the rank's child %d still runs after gorun exited", pid)
			}
		})
	}
}

// keeperPids lists the keepers that gorun process parent started (see
// launcher/keeper.go: a keeper's arguments end with its parent's pid), on
// this machine where other tests may run keepers of their own.
func keeperPids(parent int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		// gorun as a keeper, or the shell that becomes one:
		// sh -c script __gorun_keeper gorun job parent.
		f := strings.Split(string(b), "\x00")
		if len(f) > 3 && f[1] == "__gorun_keeper" && f[3] == strconv.Itoa(parent) ||
			len(f) > 6 && f[1] == "-c" && f[3] == "__gorun_keeper" && f[6] == strconv.Itoa(parent) {
			pid, _ := strconv.Atoi(e.Name())
			pids = append(pids, pid)
		}
	}
	return pids
}

// leftoversNoProc, what assertNoneLeft uses where there is no /proc, sees
// a live process and one left in its group, and nothing once they are
// gone.
func TestLeftoversNoProc(t *testing.T) {
	start := func(pgid int) *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	leader := start(0)
	pid := leader.Process.Pid
	member := start(pid) // in the leader's group, as a rank's child is
	if left := leftoversNoProc([]int{pid}); len(left) != 1 || left[0] != fmt.Sprintf("rank pid %d", pid) {
		t.Errorf("a live process: %q", left)
	}
	leader.Process.Kill()
	leader.Wait()
	if left := leftoversNoProc([]int{pid}); len(left) != 1 || left[0] != fmt.Sprintf("a process in group %d", pid) {
		t.Errorf("a process left in its group: %q", left)
	}
	member.Process.Kill()
	member.Wait()
	if left := leftoversNoProc([]int{pid}); len(left) != 0 {
		t.Errorf("both gone: %q", left)
	}
}
