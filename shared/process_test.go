package shared_test

// Multi-process tests: the real gorun runs testdata/sharedprog, built with
// the race detector (but for the 100 MiB transfer), as real rank processes
// on its embedded NATS server.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/internal/testing/testhosts"
)

var bin struct{ gorun string }

func TestMain(m *testing.M) {
	if !testingShort() {
		testbin.Main(m, "gorun-shared-", testbin.Prog{Out: &bin.gorun, Pkg: "../cmd/gorun"})
	}
	os.Exit(m.Run())
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

func sharedprog(t *testing.T, flags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sharedprog")
	args := append(append([]string{"build"}, flags...), "-o", out, "./testdata/sharedprog")
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

func gorunOK(t *testing.T, want string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin.gorun, append([]string{"--timeout", "3m"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gorun %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	if !strings.Contains(string(out), want) {
		t.Fatalf("no %q in:\n%s", want, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}

// addsPerRank is how many times each of 8 real processes adds to the
// Value (about 90 us per Add, race-built, 8 processes on 2 loaded cores).
const addsPerRank = 10000

// TestProcessesValueAdd: 8 real processes each Add 1 to one Value
// addsPerRank times: the final value is exactly 8*addsPerRank and the old
// values returned are all distinct.
func TestProcessesValueAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	gorunOK(t, fmt.Sprintf("sharedprog: OK: 8 ranks, %d adds, final %d, old values distinct", 8*addsPerRank, 8*addsPerRank),
		"-n", "8", sharedprog(t, "-race"), "add", fmt.Sprint(addsPerRank))
}

// TestProcessesPassiveTarget: rank 1 computes for 2 s without calling
// gorun; the other ranks' Gets from its window all end before it stops.
func TestProcessesPassiveTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	gorunOK(t, "sharedprog: OK: 4 ranks, 20 Gets each from computing rank 1", "-n", "4", sharedprog(t, "-race"), "passive")
}

// TestProcessesPutGet100MiB: rank 0 Puts 100 MiB into rank 2's window, in
// requests of 4 MiB over the rendezvous path, and rank 1 Gets it back
// intact. Built without the race detector, which makes copying 100 MiB
// several times slower.
func TestProcessesPutGet100MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	gorunOK(t, "sharedprog: OK: 100 MiB Put by rank 0 into rank 2's window, Got back by rank 1 intact", "-n", "3", sharedprog(t), "bigput", "100")
}

// TestHostsValueAdd: TestProcessesValueAdd with the 8 ranks on two
// network-namespace hosts, 4 on each: the 4 ranks on the second host add
// over the link between the hosts' servers.
func TestHostsValueAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := sharedprog(t, "-race")
	args := onHosts(t, 2, 4)
	gorunOK(t, fmt.Sprintf("sharedprog: OK: 8 ranks, %d adds, final %d, old values distinct", 8*addsPerRank, 8*addsPerRank),
		append(args, "-n", "8", prog, "add", fmt.Sprint(addsPerRank))...)
}

// TestHostsPutGet100MiB: TestProcessesPutGet100MiB with each rank on a
// host of its own: the 100 MiB go from rank 0's host to rank 2's, and back
// to rank 1's, through the hosts' servers.
func TestHostsPutGet100MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-process tests")
	}
	prog := sharedprog(t)
	args := onHosts(t, 3, 1)
	gorunOK(t, "sharedprog: OK: 100 MiB Put by rank 0 into rank 2's window, Got back by rank 1 intact",
		append(args, "-n", "3", prog, "bigput", "100")...)
}

// onHosts makes n namespace hosts of slots slots each, and returns gorun's
// flags for a job on them; the test fails if the job leaves a process on
// them.
func onHosts(t *testing.T, n, slots int) []string {
	c := testhosts.New(t, n)
	hf := filepath.Join(c.Dir, "hosts")
	var b strings.Builder
	for _, h := range c.Hosts {
		fmt.Fprintf(&b, "%s slots=%d\n", h.Addr, slots)
	}
	if err := os.WriteFile(hf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var q []string
	for _, o := range c.SSHOpts() {
		q = append(q, "'"+o+"'")
	}
	t.Cleanup(func() {
		if ps := c.WaitNoProcs(3e9); len(ps) != 0 {
			t.Errorf("processes left on the hosts: %+v", ps)
		}
	})
	// 30 s: a login and an agent's start overran 5 s on a loaded machine.
	return []string{"--ssh-opts", strings.Join(q, " "), "--ssh-timeout", "30s", "--hostfile", hf}
}
