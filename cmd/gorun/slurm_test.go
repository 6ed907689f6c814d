package main

// Tests of gorun inside a real Slurm allocation (internal/testing/testslurm): the
// agents start with one srun step, the nodes run no sshd.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/internal/testing/testslurm"
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
// an Allreduce pass; the agents started with srun (no sshd runs anywhere,
// and gorun runs no ssh, not even ssh -G).
func TestSlurmSalloc(t *testing.T) {
	c := newSlurm(t, 3)
	prog := buildHostprog(t)
	// An ssh first in PATH that only says it was run.
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte("#!/bin/sh\necho \"$*\" >>"+calls+"\nexit 255\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
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
	if b, err := os.ReadFile(calls); err == nil {
		t.Errorf("gorun ran ssh: %s", b)
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

// allocJob starts `salloc -N 3 -n 6 gorun rankprog mode...` and waits
// until every rank runs.
func allocJob(t *testing.T, c *testslurm.Cluster, gorunArgs []string, mode ...string) *job {
	t.Helper()
	args := append([]string{"-N", "3", "-n", "6", bin.gorun}, gorunArgs...)
	cmd := c.Client(context.Background(), "salloc", append(append(args, bin.rankprog), mode...)...)
	j := startCmd(t, cmd, nil)
	switch mode[0] {
	case "mpisleep":
		j.waitLines("ready", 6, time.Minute)
	case "sleep":
		j.waitLines("pid ", 6, time.Minute)
	}
	return j
}

// gorunPid is the pid of the gorun that salloc (pid) runs.
func gorunPid(t *testing.T, salloc int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", salloc, salloc))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == bin.gorun {
			return pid
		}
	}
	t.Fatalf("salloc (pid %d) runs no gorun: children %q", salloc, b)
	return 0
}

// jobID is the allocation salloc says it was granted.
func jobID(t *testing.T, j *job) string {
	t.Helper()
	j.waitStderr("Granted job allocation ", 30*time.Second)
	s := j.errText()
	s = s[strings.Index(s, "Granted job allocation ")+len("Granted job allocation "):]
	id, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(id)
}

// assertNodesClean fails t if a process of the job is on a node within d.
func assertNodesClean(t *testing.T, c *testslurm.Cluster, d time.Duration) {
	t.Helper()
	start := time.Now()
	if ps := c.WaitNodesClean(d); len(ps) != 0 {
		t.Fatalf("processes left on the nodes %v after the job ended: %+v", d, ps)
	}
	t.Logf("nodes clean %v after the job ended", time.Since(start).Round(time.Millisecond))
}

// TestSlurmTeardown ends jobs inside an allocation in every way a job ends
// early: gorun's exit status follows the same rules as without Slurm, and
// no process of the job is left on any node.
func TestSlurmTeardown(t *testing.T) {
	c := newSlurm(t, 3)
	t.Run("rank exits 7", func(t *testing.T) {
		j := allocJob(t, c, nil, "mpirecv", "3", "7")
		code := j.wait(time.Minute)
		took := j.exitAt.Sub(failTime(t, j.lines()))
		t.Logf("salloc exited %v after rank 3 failed", took.Round(time.Millisecond))
		if code != 7 {
			t.Errorf("exit %d, want 7; stderr:\n%s", code, j.errText())
		}
		if took > 3*time.Second {
			t.Errorf("exit %v after the rank failed, want within 3s", took)
		}
		if msg := gorunLines(j.errText()); len(msg) == 0 || !strings.Contains(msg[len(msg)-1], "rank 3 (pid ") || !strings.Contains(msg[len(msg)-1], "on host n2) exited with status 7") {
			t.Errorf("gorun's message does not name rank 3 on n2: %q", msg)
		}
		assertNodesClean(t, c, 5*time.Second)
	})
	t.Run("Ctrl-C", func(t *testing.T) {
		j := allocJob(t, c, nil, "mpisleep")
		sent := time.Now()
		// salloc runs gorun in a process group of its own, which it makes
		// the terminal's foreground group: Ctrl-C reaches gorun alone.
		syscall.Kill(-gorunPid(t, j.cmd.Process.Pid), syscall.SIGINT)
		code := j.wait(time.Minute)
		t.Logf("exit %d %v after Ctrl-C", code, j.exitAt.Sub(sent).Round(time.Millisecond))
		if code != 130 {
			t.Errorf("exit %d, want 130; stderr:\n%s", code, j.errText())
		}
		assertNodesClean(t, c, 5*time.Second)
	})
	t.Run("SIGTERM to gorun", func(t *testing.T) {
		j := allocJob(t, c, nil, "mpisleep")
		syscall.Kill(gorunPid(t, j.cmd.Process.Pid), syscall.SIGTERM)
		if code := j.wait(time.Minute); code != 143 {
			t.Errorf("exit %d, want 143; stderr:\n%s", code, j.errText())
		}
		assertNodesClean(t, c, 5*time.Second)
	})
	t.Run("a rank's setsid child", func(t *testing.T) {
		j := allocJob(t, c, nil, "setsid-child")
		j.waitLines("child ", 6, time.Minute)
		syscall.Kill(gorunPid(t, j.cmd.Process.Pid), syscall.SIGTERM)
		if code := j.wait(time.Minute); code != 143 {
			t.Errorf("exit %d, want 143; stderr:\n%s", code, j.errText())
		}
		assertNodesClean(t, c, 5*time.Second)
	})
	t.Run("timeout", func(t *testing.T) {
		j := allocJob(t, c, []string{"--timeout", "5s"}, "mpisleep")
		if code := j.wait(time.Minute); code != 124 {
			t.Errorf("exit %d, want 124; stderr:\n%s", code, j.errText())
		}
		assertNodesClean(t, c, 5*time.Second)
	})
	t.Run("scancel", func(t *testing.T) {
		j := allocJob(t, c, nil, "sleep")
		id := jobID(t, j)
		if out, err := c.Client(context.Background(), "scancel", id).CombinedOutput(); err != nil {
			t.Fatalf("scancel %s: %v: %s", id, err, out)
		}
		code := j.wait(time.Minute)
		t.Logf("exit %d after scancel; stderr:\n%s", code, j.errText())
		if code == 0 {
			t.Errorf("exit 0 after scancel")
		}
		assertNodesClean(t, c, 15*time.Second)
	})
	t.Run("agent killed", func(t *testing.T) {
		j := allocJob(t, c, nil, "sleep")
		var killed int
		for _, p := range c.NodeProcs() {
			if c.Hosts[p.Host].Hostname == "n2" && strings.HasSuffix(p.Cmdline, " __gorun_agent") {
				syscall.Kill(p.PID, syscall.SIGKILL)
				killed++
			}
		}
		if killed != 1 {
			t.Fatalf("%d agents found on n2, want 1", killed)
		}
		code := j.wait(time.Minute)
		msg := gorunLines(j.errText())
		if code == 0 || len(msg) == 0 || !strings.Contains(strings.Join(msg, "\n"), "the agent on host n2") {
			t.Errorf("exit %d, gorun's messages %q", code, msg)
		}
		assertNodesClean(t, c, 10*time.Second)
	})
	t.Run("no secret on a command line", func(t *testing.T) {
		j := allocJob(t, c, nil, "mpisleep")
		id := jobID(t, j)
		// The secrets: what the agents were given, and each rank's credentials.
		var secrets []string
		for _, p := range c.Procs() {
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.PID))
			for _, kv := range strings.Split(string(env), "\x00") {
				for _, name := range []string{"GORUN_AGENT_SECRET=", "GORUN_NATS_CREDS=", "GORUN_NATS_TOKEN="} {
					if v, ok := strings.CutPrefix(kv, name); ok && v != "" {
						secrets = append(secrets, v)
					}
				}
			}
		}
		if len(secrets) < 7 {
			t.Fatalf("found %d secrets in the environments on the nodes, want the agents' and 6 ranks'", len(secrets))
		}
		show, err := c.Client(context.Background(), "scontrol", "show", "job", "-d", id).CombinedOutput()
		if err != nil {
			t.Fatalf("scontrol show job: %v: %s", err, show)
		}
		steps, _ := c.Client(context.Background(), "scontrol", "show", "step", id).CombinedOutput()
		texts := map[string]string{"scontrol show job": string(show), "scontrol show step": string(steps)}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil {
				texts["command line of pid "+e.Name()] = string(b)
			}
		}
		for where, text := range texts {
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("a secret is in the %s", where)
				}
			}
		}
		syscall.Kill(gorunPid(t, j.cmd.Process.Pid), syscall.SIGTERM)
		j.wait(time.Minute)
		assertNodesClean(t, c, 5*time.Second)
	})
}

// TestLauncherFlag: --launcher's choices and mistakes, and what -v says;
// a fake allocation of this machine alone (no srun needed).
func TestLauncherFlag(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		env  []string // SLURM_* set
		args []string
		code int
		want string // in stderr
	}{
		{nil, []string{"-v", "-n", "2"}, 0, "launcher local: no hosts listed, not inside a Slurm allocation"},
		{[]string{"SLURM_JOB_ID=42", "SLURM_JOB_NODELIST=localhost", "SLURM_TASKS_PER_NODE=3", "SLURM_NTASKS=2"}, []string{"-v"}, 0,
			"launcher slurm: inside Slurm allocation 42 (SLURM_JOB_ID), no --hostfile or --host (--launcher overrides)"},
		{[]string{"SLURM_JOB_ID=42", "SLURM_JOB_NODELIST=localhost", "SLURM_TASKS_PER_NODE=3"}, []string{"-v", "--launcher", "local", "-n", "1"}, 0, "launcher local (--launcher)"},
		{[]string{"SLURM_JOB_ID=42", "SLURM_JOB_NODELIST=localhost", "SLURM_TASKS_PER_NODE=3"}, []string{"-v", "--host", "localhost:2", "-n", "1"}, 0, "launcher ssh: the hosts are listed"},
		{nil, []string{"--launcher", "slurm"}, 2, "gorun: --launcher slurm: not inside a Slurm allocation (SLURM_JOB_ID is not set): run gorun under salloc or sbatch"},
		{nil, []string{"--launcher", "pbs"}, 2, `gorun: --launcher "pbs": want ssh, slurm or local`},
		{nil, []string{"--launcher", "local", "--host", "a,b"}, 2, "gorun: --launcher local runs every rank on this machine: drop --hostfile and --host"},
		{[]string{"SLURM_JOB_ID=42", "SLURM_JOB_NODELIST=localhost"}, []string{"--launcher", "slurm", "--host", "a"}, 2, "gorun: --launcher slurm takes the hosts from the allocation: drop --hostfile and --host"},
		{[]string{"SLURM_JOB_ID=42", "SLURM_JOB_NODELIST=localhost", "SLURM_TASKS_PER_NODE=3", "SLURM_NTASKS=x"}, nil, 2, `gorun: SLURM_NTASKS="x": want a positive number`},
	} {
		for _, v := range []string{"SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS", "SLURM_JOB_CPUS_PER_NODE"} {
			t.Setenv(v, "")
			os.Unsetenv(v)
		}
		for _, kv := range tc.env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		code, lines, stderr := runJob(t, 30*time.Second, append(tc.args, bin.rankprog, "env")...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit %d and %q", tc.env, tc.args, code, stderr, tc.code, tc.want)
		}
		if tc.code == 0 && tc.env != nil && len(tc.args) == 1 {
			if n := len(withPrefix(lines, "GORUN_SIZE=2")); n != 2 {
				t.Errorf("SLURM_NTASKS=2: %d ranks saw GORUN_SIZE=2, want 2", n)
			}
		}
	}
}
