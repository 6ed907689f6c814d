package main

// Multi-host end-to-end tests: the real gorun binary runs ranks on network
// namespace "hosts", each with a real sshd (internal/testing/testhosts), through the
// system's ssh client. They need root, iproute2 and openssh-server: without
// them they are skipped, except in CI (CI=true) where they fail.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/internal/testing/testhosts"
)

// hostprog is testdata/hostprog, built once by the first test that needs it.
var hostprog lazyProg

func buildHostprog(t testing.TB) string { return hostprog.build(t, "hostprog", "./testdata/hostprog") }

// hostsEnv is a namespace cluster set up for gorun.
type hostsEnv struct {
	*testhosts.Cluster
	hostfile string   // every host, with the slots asked for
	ssh      []string // gorun flags that log in to the hosts
	sshOpts  string   // the same options as one --ssh-opts string
}

// newHosts makes n namespace hosts and a hostfile giving each slots slots.
// When t ends it checks that nothing is left on any host.
func newHosts(t testing.TB, n, slots int) *hostsEnv {
	t.Helper()
	testbin.MultiHost(t)
	c := testhosts.New(t, n)
	e := &hostsEnv{Cluster: c, hostfile: filepath.Join(c.Dir, "hosts")}
	var b strings.Builder
	b.WriteString("# made by the test\n")
	for _, h := range c.Hosts {
		fmt.Fprintf(&b, "%s slots=%d\n", h.Addr, slots)
	}
	if err := os.WriteFile(e.hostfile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var q []string
	for _, o := range c.SSHOpts() {
		q = append(q, "'"+o+"'")
	}
	e.sshOpts = strings.Join(q, " ")
	e.ssh = []string{"--ssh-opts", e.sshOpts, "--ssh-timeout", loadedSSHTimeout}
	t.Cleanup(func() {
		if ps := c.WaitNoProcs(3 * time.Second); len(ps) != 0 {
			t.Errorf("processes left on the hosts: %+v", ps)
		}
	})
	return e
}

// args is e.ssh followed by more.
func (e *hostsEnv) args(more ...string) []string {
	return append(append([]string(nil), e.ssh...), more...)
}

// hostIndex is the index of the host with address addr, or -1.
func (e *hostsEnv) hostIndex(addr string) int {
	for i, h := range e.Hosts {
		if h.Addr == addr {
			return i
		}
	}
	return -1
}

// assertClean fails t if a process of the job is still on a host within d
// (the job is over: its ranks, the remote scripts, the ssh sessions).
func (e *hostsEnv) assertClean(t *testing.T, d time.Duration) {
	t.Helper()
	start := time.Now()
	if ps := e.Procs(); len(ps) != 0 {
		t.Logf("right after gorun exited, on the hosts: %+v", ps)
	}
	if ps := e.WaitNoProcs(d); len(ps) != 0 {
		t.Fatalf("processes left on the hosts %v after gorun exited: %+v", d, ps)
	}
	t.Logf("hosts clean %v after gorun exited", time.Since(start).Round(time.Millisecond))
}

// checkWhere checks hostprog's "where RANK LOCAL_RANK LOCAL_SIZE SIZE PID
// ADDR" lines: want[r] is "LOCAL_RANK LOCAL_SIZE hHOST" for rank r.
func (e *hostsEnv) checkWhere(t *testing.T, lines []string, want []string) {
	t.Helper()
	got := map[int]string{}
	for _, l := range withPrefix(lines, "where ") {
		f := strings.Fields(l)
		if len(f) != 8 {
			t.Fatalf("bad line %q", l)
		}
		r, _ := strconv.Atoi(f[1])
		got[r] = fmt.Sprintf("%s %s h%d", f[2], f[3], e.hostIndex(f[6]))
		if f[4] != strconv.Itoa(len(want)) {
			t.Errorf("rank %d: size %s, want %d", r, f[4], len(want))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d where lines, want %d:\n%s", len(got), len(want), strings.Join(lines, "\n"))
	}
	for r, w := range want {
		if got[r] != w {
			t.Errorf("rank %d: local rank, local size, host = %q, want %q", r, got[r], w)
		}
	}
}

// TestHostsPlacement runs jobs on 3 hosts with 2 slots each and checks
// where every rank ran, its local rank and size, and that messages,
// reductions and collectives.Allreduce work across the hosts.
func TestHostsPlacement(t *testing.T) {
	e := newHosts(t, 3, 2)
	prog := buildHostprog(t)
	run := func(t *testing.T, want []string, args ...string) []string {
		t.Helper()
		start := time.Now()
		j := startJob(t, nil, e.args(args...)...)
		if code := j.wait(60 * time.Second); code != 0 {
			t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, strings.Join(j.lines(), "\n"), j.errText())
		}
		t.Logf("job of %d ranks on %d hosts: %v", len(want), len(e.Hosts), time.Since(start).Round(time.Millisecond))
		if want != nil {
			e.checkWhere(t, j.lines(), want)
		}
		return j.lines()
	}
	t.Run("map-by slot", func(t *testing.T) {
		lines := run(t, []string{"0 2 h0", "1 2 h0", "0 2 h1", "1 2 h1", "0 2 h2", "1 2 h2"},
			"-n", "6", "--hostfile", e.hostfile, prog, "check")
		for _, want := range []string{"ring ok", "sum 21"} {
			if len(withPrefix(lines, want)) != 1 {
				t.Errorf("no %q line in:\n%s", want, strings.Join(lines, "\n"))
			}
		}
	})
	t.Run("map-by node", func(t *testing.T) {
		run(t, []string{"0 2 h0", "0 2 h1", "0 1 h2", "1 2 h0", "1 2 h1"},
			"-n", "5", "--map-by", "node", "--hostfile", e.hostfile, prog, "check")
	})
	t.Run("one rank per slot without -n", func(t *testing.T) {
		run(t, []string{"0 2 h0", "1 2 h0", "0 2 h1", "1 2 h1", "0 2 h2", "1 2 h2"},
			"--hostfile", e.hostfile, prog, "check")
	})
	t.Run("--host and GORUN_SSH_OPTS", func(t *testing.T) {
		t.Setenv("GORUN_SSH_OPTS", e.sshOpts)
		h := e.Hosts
		j := startJob(t, nil, "-n", "4", "--host", h[0].Addr+","+h[1].Addr+":2,"+h[2].Addr, prog, "check")
		if code := j.wait(60 * time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
		}
		e.checkWhere(t, j.lines(), []string{"0 1 h0", "0 2 h1", "1 2 h1", "0 1 h2"})
	})
	t.Run("oversubscribe", func(t *testing.T) {
		run(t, []string{"0 3 h0", "1 3 h0", "2 3 h0", "0 3 h1", "1 3 h1", "2 3 h1", "0 2 h2", "1 2 h2"},
			"-n", "8", "--oversubscribe", "--hostfile", e.hostfile, prog, "check")
	})
	t.Run("slots from cores", func(t *testing.T) {
		// A hostfile line without slots gets one per core of that host,
		// asked over ssh; the namespace hosts have this machine's cores.
		hf := filepath.Join(t.TempDir(), "hosts")
		os.WriteFile(hf, []byte(e.Hosts[0].Addr+"\n"+e.Hosts[1].Addr+"\n"), 0o644)
		cores := runtime.NumCPU()
		var want []string
		for h := range 2 {
			for lr := range cores {
				want = append(want, fmt.Sprintf("%d %d h%d", lr, cores, h))
			}
		}
		run(t, want, "-n", strconv.Itoa(2*cores), "--hostfile", hf, prog, "check")
		n := strconv.Itoa(2*cores + 1)
		code, _, stderr := runJob(t, 30*time.Second, e.args("-n", n, "--hostfile", hf, prog, "check")...)
		if code == 0 || !strings.Contains(stderr, n+" ranks but only "+strconv.Itoa(2*cores)+" slots on 2 hosts") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("--nats-advertise", func(t *testing.T) {
		run(t, []string{"0 1 h0", "0 1 h1"}, "-n", "2", "--map-by", "node", "--nats-advertise", e.Gateway, "--hostfile", e.hostfile, prog, "check")
	})
	t.Run("many ranks on one host", func(t *testing.T) {
		// More logins at once than sshd's MaxStartups (10) lets through.
		var want []string
		for lr := range 24 {
			want = append(want, fmt.Sprintf("%d 24 h0", lr))
		}
		run(t, want, "-n", "24", "--oversubscribe", "--host", e.Hosts[0].Addr, prog, "check")
	})
	t.Run("too many ranks", func(t *testing.T) {
		code, _, stderr := runJob(t, 30*time.Second, e.args("-n", "7", "--hostfile", e.hostfile, prog, "check")...)
		if code == 0 || !strings.Contains(stderr, "7 ranks but only 6 slots on 3 hosts") || !strings.Contains(stderr, "--oversubscribe") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("examples/ring", func(t *testing.T) {
		lines := run(t, nil, "-n", "6", "--hostfile", e.hostfile, "../../examples/ring")
		if len(withPrefix(lines, "ring: token went 5 times around 6 ranks: 30, correct")) != 1 {
			t.Errorf("no ring line in:\n%s", strings.Join(lines, "\n"))
		}
	})
	t.Run("local and remote", func(t *testing.T) {
		j := startJob(t, nil, e.args("-n", "3", "--host", "localhost:1,"+e.Hosts[0].Addr+":2", prog, "check")...)
		if code := j.wait(60 * time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
		}
		lines := j.lines()
		if len(withPrefix(lines, "sum 6")) != 1 {
			t.Errorf("no sum line in:\n%s", strings.Join(lines, "\n"))
		}
		for _, l := range withPrefix(lines, "where 0 ") {
			if strings.Contains(l, " "+e.Hosts[0].Addr+" ") {
				t.Errorf("rank 0 ran on the remote host: %q", l)
			}
		}
	})
	e.assertClean(t, time.Second)
}

// TestHostsTeardown stops jobs whose ranks run on 3 hosts in every way a
// job ends early, and checks that gorun exits as it should and that no
// process of the job is left on any host.
func TestHostsTeardown(t *testing.T) {
	e := newHosts(t, 3, 2)
	start := func(t *testing.T, mode ...string) *job {
		j := startJob(t, nil, e.args(append([]string{"-n", "6", "--hostfile", e.hostfile, bin.rankprog}, mode...)...)...)
		switch mode[0] {
		case "mpisleep":
			j.waitLines("ready", 6, 30*time.Second)
		case "sleep":
			j.waitLines("pid ", 6, 30*time.Second)
		}
		return j
	}
	t.Run("remote rank exits 7", func(t *testing.T) {
		j := start(t, "mpirecv", "3", "7")
		code := j.wait(30 * time.Second)
		took := j.exitAt.Sub(failTime(t, j.lines()))
		t.Logf("gorun exited %v after rank 3 failed", took.Round(time.Millisecond))
		if code != 7 {
			t.Errorf("exit %d, want 7; stderr:\n%s", code, j.errText())
		}
		if took > 3*time.Second {
			t.Errorf("gorun exited %v after the rank failed, want within 3s", took)
		}
		msg := gorunLines(j.errText())
		want := fmt.Sprintf("on host %s) exited with status 7", e.Hosts[1].Addr)
		if len(msg) == 0 || !strings.Contains(msg[len(msg)-1], "rank 3 (pid ") || !strings.Contains(msg[len(msg)-1], want) {
			t.Errorf("gorun's message does not name rank 3 on %s: %q", e.Hosts[1].Addr, msg)
		}
		e.assertClean(t, time.Second)
	})
	t.Run("remote rank killed", func(t *testing.T) {
		j := start(t, "kill", "4")
		if code := j.wait(30 * time.Second); code != 128+int(syscall.SIGKILL) {
			t.Errorf("exit %d, want %d; stderr:\n%s", code, 128+int(syscall.SIGKILL), j.errText())
		}
		e.assertClean(t, time.Second)
	})
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(signalText(sig), func(t *testing.T) {
			j := start(t, "mpisleep")
			sent := time.Now()
			j.cmd.Process.Signal(sig)
			code := j.wait(30 * time.Second)
			t.Logf("gorun exited %v after %v", j.exitAt.Sub(sent).Round(time.Millisecond), signalText(sig))
			if code != 128+int(sig) {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, 128+int(sig), j.errText())
			}
			if j.exitAt.Sub(sent) > 3*time.Second {
				t.Errorf("gorun took %v to stop the job", j.exitAt.Sub(sent))
			}
			e.assertClean(t, time.Second)
		})
	}
	t.Run("SIGINT with stdin open", func(t *testing.T) {
		// gorun's stdin a pipe that stays open, as a terminal: rank 0's
		// session carries it, so its end is seen through the session.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		j := startJob(t, pr, e.args("-n", "6", "--hostfile", e.hostfile, bin.rankprog, "mpisleep")...)
		pr.Close()
		j.waitLines("ready", 6, 30*time.Second)
		j.cmd.Process.Signal(syscall.SIGINT)
		if code := j.wait(30 * time.Second); code != 130 {
			t.Errorf("exit %d, want 130; stderr:\n%s", code, j.errText())
		}
		e.assertClean(t, time.Second)
	})
	t.Run("rank ignores SIGTERM", func(t *testing.T) {
		j := start(t, "ignoreterm-exit", "2", "5")
		if code := j.wait(30 * time.Second); code != 5 {
			t.Errorf("exit %d, want 5; stderr:\n%s", code, j.errText())
		}
		e.assertClean(t, 2*time.Second)
	})
	t.Run("gorun killed", func(t *testing.T) {
		j := start(t, "mpisleep")
		killed := time.Now()
		j.cmd.Process.Kill()
		j.wait(10 * time.Second)
		e.assertClean(t, 5*time.Second)
		t.Logf("hosts clean %v after gorun was killed", time.Since(killed).Round(time.Millisecond))
	})
	t.Run("ssh connection lost", func(t *testing.T) {
		j := start(t, "sleep")
		// End host 2's ssh sessions as a network failure or a reboot would.
		var killed int
		for _, p := range e.Procs() {
			if p.Host == 2 && strings.HasPrefix(p.Cmdline, "sshd:") {
				syscall.Kill(p.PID, syscall.SIGKILL)
				killed++
			}
		}
		if killed == 0 {
			t.Fatal("no ssh session found on host 2")
		}
		code := j.wait(30 * time.Second)
		msg := gorunLines(j.errText())
		if code == 0 || len(msg) == 0 || !strings.Contains(msg[len(msg)-1], "on host "+e.Hosts[2].Addr) ||
			!strings.Contains(msg[len(msg)-1], "lost its ssh session") {
			t.Errorf("exit %d, gorun's messages %q", code, msg)
		}
		e.assertClean(t, 2*time.Second)
	})
	t.Run("stdin to remote rank 0", func(t *testing.T) {
		j := startJob(t, strings.NewReader("one\ntwo\n"), e.args("-n", "2", "--hostfile", e.hostfile, buildHostprog(t), "stdin")...)
		if code := j.wait(30 * time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
		}
		got := strings.Join(withPrefix(j.lines(), "in "), "|")
		if got != "in one|in two|in EOF" {
			t.Errorf("rank 0 read %q, want one, two and EOF", got)
		}
		e.assertClean(t, time.Second)
	})
}

// TestHostsSecret checks, during a job on 3 hosts, that the job's secret is
// on no process's command line in any host's namespace (nor anywhere on the
// machine), while the ranks have it in their environment.
func TestHostsSecret(t *testing.T) {
	e := newHosts(t, 3, 2)
	j := startJob(t, nil, e.args("-n", "6", "--hostfile", e.hostfile, bin.rankprog, "mpisleep")...)
	j.waitLines("ready", 6, 30*time.Second)
	pids := rankPids(t, j.lines())
	pid5, err := e.RootPID(2, pids[5]) // ranks print their host's pids; rank 5 is on host 2
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid5))
	if err != nil {
		t.Fatal(err)
	}
	var token string
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "GORUN_NATS_CREDS="); ok {
			token = v
		}
	}
	if len(token) < 32 {
		t.Fatalf("rank 5 has no proper GORUN_NATS_CREDS (%d bytes)", len(token))
	}
	perHost := make([]int, len(e.Hosts))
	for _, p := range e.Procs() {
		perHost[p.Host]++
		if strings.Contains(p.Cmdline, token) {
			t.Errorf("the secret is on the command line of pid %d on host %d: %q", p.PID, p.Host, p.Cmdline)
		}
	}
	for i, n := range perHost {
		if n < 2 { // at least the ranks' sessions and the ranks
			t.Errorf("host %d: only %d processes seen; the check looked in the wrong place", i, n)
		}
	}
	for i, h := range e.Hosts {
		out, err := e.Command(context.Background(), i, "ps", "-eww", "-o", "pid=,args=").CombinedOutput()
		if err != nil {
			t.Fatalf("ps in %s: %v: %s", h.NS, err, out)
		}
		if strings.Contains(string(out), token) {
			t.Errorf("ps in %s shows the secret:\n%s", h.NS, out)
		}
		if !strings.Contains(string(out), bin.rankprog) {
			t.Errorf("ps in %s shows no rank:\n%s", h.NS, out)
		}
	}
	j.cmd.Process.Signal(syscall.SIGINT)
	if code := j.wait(30 * time.Second); code != 130 {
		t.Errorf("exit %d after SIGINT, want 130", code)
	}
	if strings.Contains(j.errText(), token) || strings.Contains(strings.Join(j.lines(), "\n"), token) {
		t.Error("gorun printed the secret")
	}
	e.assertClean(t, time.Second)
}

// TestHostsCopy runs a program that --copy copies to every host: the ranks
// run the copy, which is gone when gorun exits.
func TestHostsCopy(t *testing.T) {
	e := newHosts(t, 2, 1)
	j := startJob(t, nil, e.args("-n", "2", "--copy", "--hostfile", e.hostfile, bin.rankprog, "mpisleep")...)
	j.waitLines("ready", 2, 30*time.Second)
	var dirs []string
	for rank, pid := range rankPids(t, j.lines()) {
		pid, err := e.RootPID(rank, pid) // rank r runs on host r
		if err != nil {
			t.Fatal(err)
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			t.Fatal(err)
		}
		if exe == bin.rankprog || !strings.HasPrefix(filepath.Base(filepath.Dir(exe)), "gorun.") || filepath.Base(exe) != "rankprog" {
			t.Errorf("rank %d runs %s, not a copy", rank, exe)
		}
		dirs = append(dirs, filepath.Dir(exe))
	}
	j.cmd.Process.Signal(syscall.SIGINT)
	if code := j.wait(30 * time.Second); code != 130 {
		t.Errorf("exit %d, want 130; stderr:\n%s", code, j.errText())
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("the copy %s is still there after gorun exited", d)
			os.RemoveAll(d)
		}
	}
	e.assertClean(t, time.Second)
}

// TestHostsUnreachable: a host that does not answer, or refuses ssh, gives
// one error naming it, within the connect timeout (--ssh-timeout; without
// it a connection to an address where no host answers waits for the
// kernel's SYN retries, over two minutes). slack is the start-up of gorun
// and ssh on a loaded machine.
func TestHostsUnreachable(t *testing.T) {
	e := newHosts(t, 2, 1)
	e.Stop(1)
	nobody := e.Gateway[:strings.LastIndexByte(e.Gateway, '.')] + ".200" // on the bridge, no host there
	const timeout, slack = 2 * time.Second, 8 * time.Second
	for _, tt := range []struct{ name, host string }{
		{"no such host", nobody},
		{"sshd down", e.Hosts[1].Addr},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, _, stderr := runJob(t, 30*time.Second, "--ssh-opts", e.sshOpts, "--ssh-timeout", timeout.String(),
				"-n", "2", "--host", e.Hosts[0].Addr+","+tt.host, bin.rankprog, "env")
			took := time.Since(start)
			t.Logf("%v: %q", took.Round(time.Millisecond), stderr)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "on host "+tt.host+") cannot log in with ssh (--host): ssh: connect to host "+tt.host) {
				t.Errorf("want one error naming host %s, got:\n%s", tt.host, stderr)
			}
			if took > timeout+slack {
				t.Errorf("took %v, want within --ssh-timeout %v (+%v)", took, timeout, slack)
			}
		})
	}
	e.assertClean(t, time.Second)
}

// TestHostfileErrors: a bad hostfile or host list gives one error naming the
// file and line (no hosts needed).
func TestHostfileErrors(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		name, text, want string
	}{
		{"bad slots", "a slots=2\nb slots=abc\n", "hosts:2: slots=abc: not a positive integer"},
		{"unknown key", "# hosts\na sloths=2\n", `hosts:2: unknown key "sloths" (known: slots, max_slots)`},
		{"empty", "# nothing here\n\n", "hosts: no hosts in the file"},
		{"bad hydra", "a:0\n", "hosts:1: a:0: not a positive integer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hf := filepath.Join(dir, "hosts")
			if err := os.WriteFile(hf, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runJob(t, 10*time.Second, "-n", "2", "--hostfile", hf, bin.rankprog, "env")
			want := "gorun: " + filepath.Join(dir, tt.want) + "\n"
			if code != 2 || stderr != want {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
			}
		})
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"missing hostfile", []string{"--hostfile", filepath.Join(dir, "nope")}, "nope: no such file or directory"},
		{"bad host list", []string{"--host", "a,,b"}, `--host "a,,b": empty host name`},
		{"both", []string{"--host", "a", "--hostfile", "x"}, "--hostfile and --host both given"},
		{"bad map-by", []string{"--host", "a", "--map-by", "core"}, `--map-by "core"`},
		{"bad ssh opts", []string{"--host", "a", "--ssh-opts", "-o 'x"}, "unterminated ' quote"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runJob(t, 10*time.Second, append(append([]string{"-n", "1"}, tt.args...), bin.rankprog, "env")...)
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and one line with %q", code, stderr, tt.want)
			}
		})
	}
}

// TestSlurmHostList: inside a Slurm allocation, with no hostfile, gorun runs
// on the allocation's nodes, one rank per task slot.
func TestSlurmHostList(t *testing.T) {
	skipShort(t)
	t.Setenv("SLURM_JOB_NODELIST", "localhost")
	t.Setenv("SLURM_TASKS_PER_NODE", "3")
	code, lines, stderr := runJob(t, 30*time.Second, bin.rankprog, "env")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := len(withPrefix(lines, "GORUN_SIZE=3")); n != 3 {
		t.Errorf("%d ranks saw GORUN_SIZE=3, want 3:\n%s", n, strings.Join(lines, "\n"))
	}
	t.Setenv("SLURM_TASKS_PER_NODE", "2(x2)")
	code, _, stderr = runJob(t, 30*time.Second, bin.rankprog, "env")
	if code != 2 || !strings.Contains(stderr, `SLURM_TASKS_PER_NODE="2(x2)" gives 2 counts for the 1 nodes`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
