package examples

// End-to-end tests of examples/balance and examples/pairs: the real gorun
// runs them as real rank processes, and each checks its own answer; pairs
// also runs across network-namespace hosts with one rank per host.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testing/testhosts"
)

// poolBins are gorun, balance and pairs, as built for one test.
type poolBins struct{ gorun, balance, pairs string }

// buildPoolBins builds them into t's temporary directory (the go build
// cache makes the second build cheap).
func buildPoolBins(t *testing.T) poolBins {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test skipped with -short")
	}
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../cmd/gorun", "./balance", "./pairs").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return poolBins{filepath.Join(dir, "gorun"), filepath.Join(dir, "balance"), filepath.Join(dir, "pairs")}
}

// balanceLine is one mode's line of balance's table.
type balanceLine struct {
	wall, xIdeal, imbalance float64
	tasks                   []int
}

func parseBalance(t *testing.T, out, mode string) balanceLine {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[0] != mode {
			continue
		}
		var b balanceLine
		if _, err := fmt.Sscanf(strings.Join(f[1:4], " "), "%g %g %g", &b.wall, &b.xIdeal, &b.imbalance); err != nil {
			t.Fatalf("bad %s line %q: %v", mode, l, err)
		}
		for _, cell := range f[4:] {
			var busy float64
			var k int
			if _, err := fmt.Sscanf(cell, "%g/%d", &busy, &k); err != nil {
				t.Fatalf("bad cell %q in %q", cell, l)
			}
			b.tasks = append(b.tasks, k)
		}
		return b
	}
	t.Fatalf("no %s line in:\n%s", mode, out)
	return balanceLine{}
}

func TestBalance(t *testing.T) {
	poolBins := buildPoolBins(t)
	t.Run("n=4", func(t *testing.T) {
		out := runOK(t, poolBins.gorun, "-n", "4", poolBins.balance, "-tasks", "100")
		t.Log("\n" + out)
		okLine(t, out, "balance: OK:", "100 tasks in each mode, every result right")
		st, dyn := parseBalance(t, out, "static"), parseBalance(t, out, "dynamic")
		// Static gives every rank 25 tasks, so the 4x slower rank 1 is
		// busy about 4 times as long as the others: the imbalance is set
		// by the sleeps, not by the machine's load.
		if fmt.Sprint(st.tasks) != "[25 25 25 25]" || st.imbalance < 1.5 {
			t.Errorf("static: tasks %v, imbalance %.2f; want 25 each and an imbalance over 1.5", st.tasks, st.imbalance)
		}
		if sum := dyn.tasks[0] + dyn.tasks[1] + dyn.tasks[2] + dyn.tasks[3]; sum != 100 || dyn.tasks[1] >= dyn.tasks[2] {
			t.Errorf("dynamic: tasks %v; want 100 in all, fewer on the slow rank 1", dyn.tasks)
		}
		if dyn.wall >= st.wall {
			t.Errorf("dynamic took %.3fs, static %.3fs", dyn.wall, st.wall)
		}
	})
	t.Run("n=1", func(t *testing.T) {
		out := runOK(t, poolBins.gorun, "-n", "1", poolBins.balance, "-tasks", "10")
		okLine(t, out, "balance: OK:", "10 tasks in each mode")
	})
	t.Run("wrong result", func(t *testing.T) {
		code, out, stderr := run(t, poolBins.gorun, "-n", "3", poolBins.balance, "-tasks", "30", "-wrong", "17")
		if code == 0 || !strings.Contains(stderr, "balance: dynamic: task 17 returned 297, want 296") || strings.Contains(out, "balance: OK") {
			t.Errorf("exit %d; want non-zero naming task 17; stdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
}

// report is the part of pairs' -json output the tests check.
type report struct {
	Ranks  int                `json:"ranks"`
	Hosts  []string           `json:"hosts"`
	Rounds map[string]int     `json:"rounds"`
	Wall   map[string]float64 `json:"wall_s"`
	Pairs  []struct {
		A, B      int
		HostA     string  `json:"host_a"`
		HostB     string  `json:"host_b"`
		Latency   float64 `json:"latency_us"`
		Bandwidth float64 `json:"bandwidth_mbps"`
		Schedule  string  `json:"schedule"`
		Round     int     `json:"round"`
	} `json:"pairs"`
	Messages int64 `json:"messages"`
	OK       bool  `json:"ok"`
}

// checkPairs checks a -json report of n ranks: every pair once in each
// schedule, each rank in at most one pair per parallel round, plausible
// figures, hosts labelled.
func checkPairs(t *testing.T, out string, n, wantRounds int) report {
	t.Helper()
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	if rep.Ranks != n || len(rep.Hosts) != n || !rep.OK || rep.Messages <= 0 {
		t.Errorf("ranks %d, %d hosts, ok %t, %d messages; want %d, %d, true, some", rep.Ranks, len(rep.Hosts), rep.OK, rep.Messages, n, n)
	}
	if rep.Rounds["serial"] != n*(n-1)/2 || rep.Rounds["parallel"] != wantRounds {
		t.Errorf("rounds %v, want serial %d, parallel %d", rep.Rounds, n*(n-1)/2, wantRounds)
	}
	if rep.Wall["serial"] <= 0 || rep.Wall["parallel"] <= 0 {
		t.Errorf("wall times %v", rep.Wall)
	}
	seen := map[string]int{}
	inRound := map[string]bool{}
	for _, p := range rep.Pairs {
		if p.A < 0 || p.A >= p.B || p.B >= n {
			t.Errorf("bad pair %d-%d", p.A, p.B)
			continue
		}
		seen[fmt.Sprint(p.Schedule, p.A, "-", p.B)]++
		if p.Latency <= 0 || p.Latency > 1e6 || p.Bandwidth <= 0 || p.Bandwidth > 1e6 {
			t.Errorf("%s %d-%d: latency %g us, bandwidth %g MB/s: implausible", p.Schedule, p.A, p.B, p.Latency, p.Bandwidth)
		}
		if p.HostA == "" || p.HostA != rep.Hosts[p.A] || p.HostB != rep.Hosts[p.B] {
			t.Errorf("%d-%d labelled %q-%q, hosts %v", p.A, p.B, p.HostA, p.HostB, rep.Hosts)
		}
		if p.Schedule == "parallel" {
			for _, r := range []int{p.A, p.B} {
				k := fmt.Sprint(p.Round, "/", r)
				if inRound[k] {
					t.Errorf("rank %d is in two pairs of parallel round %d", r, p.Round)
				}
				inRound[k] = true
			}
			if p.Round < 0 || p.Round >= wantRounds {
				t.Errorf("%d-%d in parallel round %d of %d", p.A, p.B, p.Round, wantRounds)
			}
		}
	}
	for _, s := range []string{"serial", "parallel"} {
		for a := range n {
			for b := a + 1; b < n; b++ {
				if k := seen[fmt.Sprint(s, a, "-", b)]; k != 1 {
					t.Errorf("%s: pair %d-%d measured %d times", s, a, b, k)
				}
			}
		}
	}
	if len(rep.Pairs) != n*(n-1) {
		t.Errorf("%d pairs in all, want %d (%d in each schedule)", len(rep.Pairs), n*(n-1), n*(n-1)/2)
	}
	return rep
}

func TestPairs(t *testing.T) {
	poolBins := buildPoolBins(t)
	small := []string{"-lat-iters", "20", "-bw-size", "200000", "-bw-iters", "2", "-warmup", "1"}
	t.Run("n=7/json", func(t *testing.T) {
		out := runOK(t, poolBins.gorun, append([]string{"-n", "7", poolBins.pairs, "-json"}, small...)...)
		rep := checkPairs(t, out, 7, 7)
		t.Logf("wall: %v", rep.Wall)
	})
	t.Run("n=4/json", func(t *testing.T) {
		checkPairs(t, runOK(t, poolBins.gorun, append([]string{"-n", "4", poolBins.pairs, "-json"}, small...)...), 4, 3)
	})
	t.Run("n=5/text", func(t *testing.T) {
		out := runOK(t, poolBins.gorun, append([]string{"-n", "5", poolBins.pairs}, small...)...)
		okLine(t, out, "pairs: OK:", "10 pairs x 2 schedules measured")
		for _, want := range []string{"latency (us); above the diagonal", "bandwidth (MB/s); above the diagonal",
			"serial   schedule: 10 pairs in 10 rounds, wall ", "parallel schedule: 10 pairs in 5 rounds, wall ", "contention: "} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})
	t.Run("n=1", func(t *testing.T) {
		code, out, stderr := run(t, poolBins.gorun, "-n", "1", poolBins.pairs)
		if code == 0 || !strings.Contains(stderr, "pairs: needs at least 2 ranks") {
			t.Errorf("exit %d, want non-zero with a message; stdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
}

// TestPairsHosts: on namespace hosts with one rank per host (--map-by
// node), pairs labels each rank with its own host's address.
func TestPairsHosts(t *testing.T) {
	poolBins := buildPoolBins(t)
	const n = 3
	c := testhosts.New(t, n)
	hf := filepath.Join(c.Dir, "hosts")
	var b strings.Builder
	for _, h := range c.Hosts {
		fmt.Fprintf(&b, "%s slots=2\n", h.Addr)
	}
	if err := os.WriteFile(hf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var q []string
	for _, o := range c.SSHOpts() {
		q = append(q, "'"+o+"'")
	}
	out := runOK(t, poolBins.gorun, "--ssh-opts", strings.Join(q, " "), "--ssh-timeout", "5s",
		"-n", fmt.Sprint(n), "--map-by", "node", "--hostfile", hf,
		poolBins.pairs, "-json", "-label", "addr", "-lat-iters", "20", "-bw-size", "200000", "-bw-iters", "2")
	rep := checkPairs(t, out, n, n)
	for r, h := range rep.Hosts {
		if h != c.Hosts[r].Addr {
			t.Errorf("rank %d labelled %q, want its host's address %s", r, h, c.Hosts[r].Addr)
		}
	}
	t.Logf("hosts %v, wall %v", rep.Hosts, rep.Wall)
	if ps := c.WaitNoProcs(3e9); len(ps) != 0 {
		t.Errorf("processes left on the hosts: %+v", ps)
	}
}
