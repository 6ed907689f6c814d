package main

// Tests of gorun inside a real Slurm allocation (internal/testslurm): the
// agents start with one srun step, the nodes run no sshd.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testbin"
	"github.com/gorun-hpc/gorun/internal/testslurm"
)

// newSlurm starts a Slurm cluster of n nodes of 2 CPUs; when t ends it
// checks that nothing of any job is left on a node.
func newSlurm(t *testing.T, n int) *testslurm.Cluster {
	t.Helper()
	testbin.MultiHost(t)
	c := testslurm.New(t, n, 2)
	t.Cleanup(func() {
		if ps := c.WaitNodesClean(10 * time.Second); len(ps) != 0 {
			t.Errorf("processes left on the nodes: %+v", ps)
		}
	})
	return c
}

// slurmJob starts a Slurm client command (salloc ... gorun ...) as a job.
func slurmJob(t *testing.T, c *testslurm.Cluster, name string, args ...string) *job {
	t.Helper()
	return startCmd(t, c.Client(context.Background(), name, args...), nil)
}

// nodeOf maps hostprog's where lines to rank -> "LOCAL_RANK LOCAL_SIZE HOSTNAME".
func nodeOf(t *testing.T, lines []string) map[int]string {
	t.Helper()
	got := map[int]string{}
	for _, l := range withPrefix(lines, "where ") {
		f := strings.Fields(l)
		if len(f) != 8 {
			t.Fatalf("bad line %q", l)
		}
		r, _ := strconv.Atoi(f[1])
		got[r] = f[2] + " " + f[3] + " " + f[7]
	}
	return got
}

// TestSlurmSalloc: `salloc -N 3 -n 6 gorun prog` places ranks 0-1, 2-3 and
// 4-5 on nodes n1, n2 and n3, with the launch contract right; a ring and
// an Allreduce pass; the agents started with srun (no sshd runs anywhere).
func TestSlurmSalloc(t *testing.T) {
	c := newSlurm(t, 3)
	prog := buildHostprog(t)
	j := slurmJob(t, c, "salloc", "-N", "3", "-n", "6", bin.gorun, "-v", prog, "check")
	if code := j.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nslurmctld:\n%s", code, j.errText(), c.Log("slurmctld"))
	}
	got := nodeOf(t, j.lines())
	for r := range 6 {
		want := fmt.Sprintf("%d 2 n%d", r%2, r/2+1)
		if got[r] != want {
			t.Errorf("rank %d: local rank, local size, node = %q, want %q", r, got[r], want)
		}
	}
	for _, w := range []string{"ring ok", "sum 21"} {
		if len(withPrefix(j.lines(), w)) != 1 {
			t.Errorf("no %q line:\n%s", w, strings.Join(j.lines(), "\n"))
		}
	}
	stderr := j.errText()
	for _, w := range []string{"launcher slurm: inside Slurm allocation", "srun --nodes=3 --ntasks=3 --ntasks-per-node=1", "agents of 3 nodes started by srun"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("-v does not say %q:\n%s", w, stderr)
		}
	}
	for _, p := range c.Procs() {
		if strings.Contains(p.Cmdline, "sshd") {
			t.Errorf("an sshd runs on %s: %s", c.Hosts[p.Host].Hostname, p.Cmdline)
		}
	}
}

// TestSlurmSbatch: a batch script whose body is gorun runs on every
// allocated node (gorun on the first, the agents on all), and its output
// file holds every rank's lines whole: 6 ranks each writing 500 lines of
// 3000 bytes to stdout and as many to stderr, 100 bytes per write.
func TestSlurmSbatch(t *testing.T) {
	c := newSlurm(t, 3)
	prog := buildHostprog(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "job.out")
	script := filepath.Join(dir, "job.sh")
	const n, size = 500, 3000
	body := fmt.Sprintf("#!/bin/sh\n#SBATCH -N 3\n#SBATCH --ntasks-per-node=2\n%s %s lines %d %d 100\n%s %s check\n",
		bin.gorun, bin.rankprog, n, size, bin.gorun, prog)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := c.Client(ctx, "sbatch", "--wait", "-o", out, script).CombinedOutput()
	text, _ := os.ReadFile(out)
	if err != nil {
		t.Fatalf("sbatch: %v: %s\noutput file:\n%.3000s", err, b, text)
	}
	checkLines(t, "stdout", string(text), "O", 6, n, size, false)
	checkLines(t, "stderr", string(text), "E", 6, n, size, false)
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	got := nodeOf(t, lines)
	for r := range 6 {
		if want := fmt.Sprintf("%d 2 n%d", r%2, r/2+1); got[r] != want {
			t.Errorf("rank %d: local rank, local size, node = %q, want %q", r, got[r], want)
		}
	}
	for _, w := range []string{"ring ok", "sum 21"} {
		if len(withPrefix(lines, w)) != 1 {
			t.Errorf("no %q line in the output file", w)
		}
	}
}
