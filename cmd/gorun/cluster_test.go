package main

// Multi-host tests of the agents and the job's NATS cluster: one agent per
// host started with one ssh login, gorun shipped to hosts that lack it,
// Init on a cluster, and a rank's escaped children ended.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// countingSSH puts an ssh first in PATH that counts its logins in a file
// (one line each; `ssh -G`, which only prints the configuration, is no
// login) and runs the real ssh; it returns the count's reader.
func countingSSH(t *testing.T) func() int {
	t.Helper()
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	real, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ncase \" $* \" in *\" -G \"*) ;; *) echo x >>" + count + ";; esac\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "\n")
	}
}

// TestHostsOneLoginPerHost: 256 ranks on 4 hosts (64 each) pass a token
// around a ring and Allreduce, and gorun logged in exactly once per host.
func TestHostsOneLoginPerHost(t *testing.T) {
	e := newHosts(t, 4, 64)
	prog := buildHostprog(t)
	logins := countingSSH(t)
	start := time.Now()
	j := startJob(t, nil, e.args("-n", "256", "--hostfile", e.hostfile, prog, "check")...)
	if code := j.wait(5 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
	}
	t.Logf("256 ranks on 4 hosts: %v", time.Since(start).Round(time.Millisecond))
	lines := j.lines()
	for _, want := range []string{"ring ok", "sum " + strconv.Itoa(256*257/2)} {
		if len(withPrefix(lines, want)) != 1 {
			t.Errorf("no %q line", want)
		}
	}
	perHost := map[int]int{}
	for _, l := range withPrefix(lines, "where ") {
		f := strings.Fields(l)
		perHost[e.hostIndex(f[6])]++
	}
	for i := range e.Hosts {
		if perHost[i] != 64 {
			t.Errorf("host %d ran %d ranks, want 64", i, perHost[i])
		}
	}
	if n := logins(); n != 4 {
		t.Errorf("%d ssh logins for 4 hosts, want 4", n)
	}
	e.assertClean(t, 2*time.Second)
}

// TestHostsBurstAfterInit: right after Init, 8 ranks on 4 hosts each send
// 1000 eager messages to every other rank at once; none is lost (Init
// waited until every server of the cluster knew every rank's inbox).
func TestHostsBurstAfterInit(t *testing.T) {
	e := newHosts(t, 4, 2)
	prog := buildHostprog(t)
	for run := range 3 {
		j := startJob(t, nil, e.args("-n", "8", "--hostfile", e.hostfile, prog, "burst", "1000")...)
		if code := j.wait(2 * time.Minute); code != 0 {
			t.Fatalf("run %d: exit %d; stderr:\n%s", run, code, j.errText())
		}
		if n := len(withPrefix(j.lines(), "burst ok")); n != 8 {
			t.Fatalf("run %d: %d ranks say burst ok, want 8", run, n)
		}
	}
	e.assertClean(t, 2*time.Second)
}

// TestHostsShipGorun: a host without this gorun build gets it copied into
// its cache once; the next job copies nothing, and -v says which.
func TestHostsShipGorun(t *testing.T) {
	e := newHosts(t, 2, 1)
	run := func() string {
		code, _, stderr := runJob(t, time.Minute, e.args("-v", "-n", "2", "--hostfile", e.hostfile, bin.rankprog, "env")...)
		if code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		return stderr
	}
	first := run()
	for _, h := range e.Hosts {
		if !strings.Contains(first, "host "+h.Addr+": copied gorun there") {
			t.Errorf("first job: no -v line saying gorun was copied to %s:\n%s", h.Addr, first)
		}
		bins, _ := filepath.Glob(filepath.Join(e.CacheDir(&h), "gorun", "*", "gorun"))
		if len(bins) != 1 {
			t.Errorf("host %s: %d gorun binaries in its cache, want 1", h.Addr, len(bins))
		} else if fi, err := os.Stat(filepath.Dir(bins[0])); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("host %s: the cache directory is not private: %v %v", h.Addr, fi.Mode(), err)
		}
	}
	second := run()
	for _, h := range e.Hosts {
		if !strings.Contains(second, "host "+h.Addr+": this gorun is there already") || strings.Contains(second, "copied gorun") {
			t.Errorf("second job: want a -v line saying nothing was copied to %s:\n%s", h.Addr, second)
		}
	}
	e.assertClean(t, time.Second)
}

// TestHostsSetsidChild: ranks on 2 hosts start a child that leaves their
// process group and session (setsid); when the job is stopped, the
// agents end those children too.
func TestHostsSetsidChild(t *testing.T) {
	e := newHosts(t, 2, 1)
	j := startJob(t, nil, e.args("-n", "2", "--hostfile", e.hostfile, bin.rankprog, "setsid-child")...)
	j.waitLines("child ", 2, 30*time.Second)
	// The children run on their hosts, in sessions of their own.
	sessions := 0
	for _, p := range e.Procs() {
		if strings.HasSuffix(p.Cmdline, " sleep") {
			sessions++
		}
	}
	if sessions != 2 {
		t.Fatalf("%d escaped children on the hosts, want 2: %+v", sessions, e.Procs())
	}
	j.cmd.Process.Signal(syscall.SIGINT)
	if code := j.wait(30 * time.Second); code != 130 {
		t.Errorf("exit %d, want 130; stderr:\n%s", code, j.errText())
	}
	e.assertClean(t, 2*time.Second)
}
