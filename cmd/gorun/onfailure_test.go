package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/wait"
	"github.com/gorun-hpc/gorun/launcher"
)

var survivorprog lazyProg

// deathNews is the longest the test lets the news of a death take to reach
// a rank blocked in Recv from the dead rank: a bound for a broken
// mechanism (a rank never told), not a figure; the figure is logged (a few
// milliseconds on one host, with both cores busy).
const deathNews = 5 * time.Second

// TestOnFailureContinue: under --on-failure continue, a rank other than 0
// that is SIGKILLed is named, every other rank blocked in Recv from it
// fails promptly with mpi.ErrPeerDied, the job goes on and gorun exits 0,
// listing the dead rank; pool.Map re-runs the dead rank's tasks; the
// survivors Agree alike and Shrink to a working communicator. Without
// the flag, or when rank 0 dies, the job ends with the dead rank's status.
func TestOnFailureContinue(t *testing.T) {
	prog := survivorprog.build(t, "survivorprog", "./testdata/survivorprog")
	const gone = "; the job goes on without it (--on-failure continue)"
	t.Run("recv", func(t *testing.T) {
		code, out, stderr := runJob(t, time.Minute, "-n", "4", "--on-failure", "continue", prog, "recv", "2")
		if code != 0 {
			t.Fatalf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", code, strings.Join(out, "\n"), stderr)
		}
		if !strings.Contains(stderr, "gorun: rank 2 (pid ") || !strings.Contains(stderr, "was killed by signal 9 (SIGKILL)"+gone) ||
			!strings.Contains(stderr, "which died: 2") {
			t.Errorf("gorun does not name rank 2 as dead, and the job as gone on:\n%s", stderr)
		}
		checkDeathNews(t, out, 2, 3)
	})
	t.Run("map", func(t *testing.T) {
		code, out, stderr := runJob(t, 2*time.Minute, "-n", "8", "--on-failure", "continue", prog, "map", "3")
		if code != 0 || !strings.Contains(strings.Join(out, "\n"), "map: OK: 1000 results") {
			t.Fatalf("exit %d, want 0 and every result; stdout:\n%s\nstderr:\n%s", code, strings.Join(out, "\n"), stderr)
		}
		if !strings.Contains(stderr, "gorun: rank 3 (pid ") || !strings.Contains(stderr, gone) || !strings.Contains(stderr, "which died: 3") {
			t.Errorf("gorun does not name rank 3 as dead:\n%s", stderr)
		}
	})
	t.Run("shrink", func(t *testing.T) {
		const n, dead = 5, 3
		code, out, stderr := runJob(t, time.Minute, "-n", strconv.Itoa(n), "--on-failure", "continue", prog, "shrink", strconv.Itoa(dead))
		if code != 0 {
			t.Fatalf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", code, strings.Join(out, "\n"), stderr)
		}
		// Every survivor: the same Agree (the AND of ^(1<<r) over the
		// survivors, with or without the dead rank's flag, which never
		// gave one), a communicator of n-1 in the old order, and the sum
		// of the survivors' old ranks.
		agree, sum := ^0, 0
		for r := range n {
			if r != dead {
				agree &^= 1 << r
				sum += r
			}
		}
		got := 0
		for _, l := range out {
			var r, a, sr, ss, s int
			if _, err := fmt.Sscanf(l, "shrink: rank %d: agreed %d, rank %d of %d, sum of old ranks %d", &r, &a, &sr, &ss, &s); err != nil {
				continue
			}
			got++
			if want := r - btoi(r > dead); a != agree || sr != want || ss != n-1 || s != sum {
				t.Errorf("rank %d: %q; want agreed %d, rank %d of %d, sum %d", r, l, agree, want, n-1, sum)
			}
		}
		if got != n-1 {
			t.Errorf("%d survivors said what they got, want %d:\n%s", got, n-1, strings.Join(out, "\n"))
		}
	})
	for _, c := range []struct {
		name string
		args []string
		rank int
	}{
		{"abort", nil, 2},
		{"rank0", []string{"--on-failure", "continue"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"-n", "4"}, c.args...), prog, "recv", strconv.Itoa(c.rank))
			code, _, stderr := runJob(t, time.Minute, args...)
			if code != 128+9 {
				t.Errorf("exit %d, want %d (rank %d's SIGKILL); stderr:\n%s", code, 128+9, c.rank, stderr)
			}
			lines := gorunLines(stderr)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], fmt.Sprintf("gorun: rank %d (pid ", c.rank)) || strings.Contains(stderr, "goes on") {
				t.Errorf("gorun said %q; want one line naming rank %d, and the job ended", lines, c.rank)
			}
		})
	}
}

// TestHostsOnFailureContinue: under --on-failure continue, a host cut off
// mid-Map (its link down, its processes alive) loses its ranks, not the
// job: gorun names them lost after HeartbeatTimeout, tells the others, and
// pool.Map hands their tasks on; every result comes, in order, gorun exits
// 0 listing the dead, and the cut-off host's agent stops its ranks (nothing
// of the job is left there).
func TestHostsOnFailureContinue(t *testing.T) {
	e := newHosts(t, 2, 2)
	prog := survivorprog.build(t, "survivorprog", "./testdata/survivorprog")
	j := startJob(t, nil, e.args("--ssh-timeout", "30s", "-n", "4", "--on-failure", "continue", "--hostfile", e.hostfile, prog, "slowmap", "1000")...)
	j.waitLines("rank ", 4, time.Minute)
	time.Sleep(500 * time.Millisecond) // a few hundred tasks in
	cut := time.Now()
	linkDown(t, e.Cluster, 1)
	code := j.wait(2 * time.Minute)
	t.Logf("gorun exited %d %v after host 1's link went down", code, time.Since(cut).Round(time.Millisecond))
	out, stderr := strings.Join(j.lines(), "\n"), j.errText()
	if code != 0 || !strings.Contains(out, "map: OK: 1000 results") {
		t.Fatalf("exit %d, want 0 and every result; stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	t.Logf("gorun said: %q", gorunLines(stderr))
	name := e.Hosts[1].Addr
	for _, r := range []int{2, 3} {
		if !strings.Contains(stderr, fmt.Sprintf("gorun: rank %d (", r)) || !strings.Contains(stderr, "is lost: host "+name) {
			t.Errorf("gorun does not name rank %d lost with host %s:\n%s", r, name, stderr)
		}
	}
	if !strings.Contains(stderr, "which died: 2, 3") && !strings.Contains(stderr, "which died: 3, 2") {
		t.Errorf("gorun does not list ranks 2 and 3 as dead:\n%s", stderr)
	}
	var left []string
	if !wait.For(launcher.AgentHeartbeatTimeout+5*time.Second, func() bool { left = jobProcs(e.Cluster, 1); return len(left) == 0 }) {
		t.Errorf("the job still runs on the cut-off host: %q", left)
	}
}

// checkDeathNews checks, from survivorprog recv's output, that the others
// (want of them) each learnt of rank dead's death, and logs how long after
// it each did.
func checkDeathNews(t *testing.T, out []string, dead, want int) {
	t.Helper()
	var died int64
	learnt := map[int]int64{}
	for _, l := range out {
		var r int
		var at int64
		if _, err := fmt.Sscanf(l, "rank %d dies at %d", &r, &at); err == nil {
			died = at
		} else if _, err := fmt.Sscanf(l, "rank %d learnt at %d", &r, &at); err == nil {
			learnt[r] = at
		}
	}
	if died == 0 || len(learnt) != want {
		t.Fatalf("rank %d died at %d, and %d ranks learnt of it (want %d):\n%s", dead, died, len(learnt), want, strings.Join(out, "\n"))
	}
	for r, at := range learnt {
		took := time.Duration(at - died)
		t.Logf("rank %d learnt of rank %d's death %v after it", r, dead, took)
		if took > deathNews {
			t.Errorf("rank %d learnt of rank %d's death %v after it", r, dead, took)
		}
	}
}

// TestHostsDeathNews: a rank that dies on one namespace host is news to
// the ranks of the others (through its agent, gorun, and the job's
// cluster) within deathNews; the figure is logged. The hosts share this
// machine's clock.
func TestHostsDeathNews(t *testing.T) {
	e := newHosts(t, 2, 2)
	prog := survivorprog.build(t, "survivorprog", "./testdata/survivorprog")
	code, out, stderr := runJob(t, 2*time.Minute, e.args("-n", "4", "--on-failure", "continue", "--hostfile", e.hostfile, prog, "recv", "2")...)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", code, strings.Join(out, "\n"), stderr)
	}
	checkDeathNews(t, out, 2, 3)
}

// TestHostsOnFailureFlap: a host held lost whose link comes back: its
// agent, which gorun has left, stops its ranks and exits, and the route
// from its server closes while the job still runs. That route's end is the
// lost host's, not news: the job goes on and exits 0 (without the filter
// it ended with "the route ... closed").
func TestHostsOnFailureFlap(t *testing.T) {
	e := newHosts(t, 2, 2)
	prog := survivorprog.build(t, "survivorprog", "./testdata/survivorprog")
	j := startJob(t, nil, e.args("--ssh-timeout", "30s", "-n", "4", "--on-failure", "continue", "--hostfile", e.hostfile, prog, "slowmap", "2500")...)
	j.waitLines("rank ", 4, time.Minute)
	time.Sleep(500 * time.Millisecond)
	linkDown(t, e.Cluster, 1)
	if !wait.For(launcher.HeartbeatTimeout+10*time.Second, func() bool { return strings.Count(j.errText(), "is lost: host") == 2 }) {
		t.Fatalf("gorun did not hold host 1's ranks lost:\n%s", j.errText())
	}
	veth := e.Hosts[1].Veth
	if out, err := exec.Command("ip", "link", "set", "dev", veth, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v: %s", veth, err, out)
	}
	up := time.Now()
	code := j.wait(2 * time.Minute)
	out, stderr := strings.Join(j.lines(), "\n"), j.errText()
	t.Logf("gorun exited %d %v after the link came back; it said: %q", code, time.Since(up).Round(time.Millisecond), gorunLines(stderr))
	if code != 0 || !strings.Contains(out, "map: OK: 2500 results") {
		t.Fatalf("exit %d, want 0 and every result; stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	if !wait.For(launcher.AgentHeartbeatTimeout+5*time.Second, func() bool { return len(jobProcs(e.Cluster, 1)) == 0 }) {
		t.Errorf("the job still runs on the lost host: %q", jobProcs(e.Cluster, 1))
	}
}
