package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
	"github.com/gorun-hpc/gorun/internal/testing/wait"
)

// shmPaths parses the lines "shm=PATH WORD" that a job's ranks printed
// into the paths they saw (GORUN_SHM) and the words after them.
func shmPaths(t *testing.T, lines []string) (paths, modes []string) {
	t.Helper()
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "shm="); ok {
			path, mode, _ := strings.Cut(rest, " ")
			paths, modes = append(paths, path), append(modes, mode)
		}
	}
	return paths, modes
}

// waitGone waits up to d for path to be gone.
func waitGone(path string, d time.Duration) bool {
	return wait.For(d, func() bool {
		_, err := os.Stat(path)
		return os.IsNotExist(err)
	})
}

const shmProg = `echo "shm=$GORUN_SHM $(stat -c %a "$GORUN_SHM" 2>/dev/null)"`

// TestShmSegment: the ranks of one host get one shared-memory segment
// (GORUN_SHM), this user's only (mode 0600), made for the job and gone
// when it ends; none with --shm=false or for a lone rank.
func TestShmSegment(t *testing.T) {
	j := startJob(t, nil, "-n", "3", "/bin/sh", "-c", shmProg)
	if code := j.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
	}
	paths, modes := shmPaths(t, j.lines())
	if len(paths) != 3 || paths[0] == "" || paths[0] != paths[1] || paths[1] != paths[2] || !strings.HasPrefix(paths[0], "/dev/shm/") {
		t.Fatalf("the ranks saw GORUN_SHM %q, want one segment in /dev/shm for all three", paths)
	}
	for _, m := range modes {
		if m != "600" {
			t.Errorf("segment mode %q, want 600", m)
		}
	}
	if !waitGone(paths[0], time.Second) {
		t.Errorf("%s is still there after the job", paths[0])
	}
	for _, args := range [][]string{{"-n", "3", "--shm=false"}, {"-n", "1"}} {
		j := startJob(t, nil, append(args, "/bin/sh", "-c", shmProg)...)
		if code := j.wait(30 * time.Second); code != 0 {
			t.Fatalf("%q: exit %d; stderr:\n%s", args, code, j.errText())
		}
		if paths, _ := shmPaths(t, j.lines()); len(paths) == 0 || slicesAny(paths, func(p string) bool { return p != "" }) {
			t.Errorf("%q: the ranks saw GORUN_SHM %q, want none", args, paths)
		}
	}
}

func slicesAny(s []string, f func(string) bool) bool {
	for _, x := range s {
		if f(x) {
			return true
		}
	}
	return false
}

// TestShmSweptAfterKill: gorun SIGKILLed while its ranks run leaves no
// segment in /dev/shm: its keeper removes it.
func TestShmSweptAfterKill(t *testing.T) {
	j := startJob(t, nil, "-n", "2", "/bin/sh", "-c", shmProg+"; exec sleep 300")
	j.waitLines("shm=", 2, 30*time.Second)
	paths, _ := shmPaths(t, j.lines())
	if paths[0] == "" {
		t.Fatalf("no segment: %q", paths)
	}
	// The keeper starts beside the ranks: a gorun killed before it ran
	// would have nobody to sweep after it (the next job on the host would).
	testbin.WaitFor(t, 30*time.Second, func() bool { return len(keeperPids(j.cmd.Process.Pid)) == 1 }, "gorun's keeper")
	j.cmd.Process.Kill()
	j.wait(30 * time.Second)
	// The keeper sweeps within a poll of gorun's end; the bound leaves room
	// for a machine whose cores are busy (5 s was once too short there).
	if !waitGone(paths[0], 30*time.Second) {
		t.Errorf("%s is still there 30s after gorun was SIGKILLed", paths[0])
	}
}

// TestHostsShm: each namespace host's ranks share a segment of that host
// alone, in a /dev/shm no other host sees; gorun SIGKILLed leaves none on
// any host.
func TestHostsShm(t *testing.T) {
	e := newHosts(t, 2, 2)
	j := startJob(t, nil, e.args("-n", "4", "--hostfile", e.hostfile, "/bin/sh", "-c", `echo "shm=$GORUN_SHM $(hostname)"; exec sleep 300`)...)
	j.waitLines("shm=", 4, 30*time.Second)
	paths, hosts := shmPaths(t, j.lines())
	byHost := map[string]string{}
	for i, p := range paths {
		if p == "" {
			t.Fatalf("a rank on %s got no segment: %q", hosts[i], j.lines())
		}
		if q, ok := byHost[hosts[i]]; ok && q != p {
			t.Errorf("ranks of %s got two segments: %s, %s", hosts[i], p, q)
		}
		byHost[hosts[i]] = p
	}
	if len(byHost) != 2 {
		t.Fatalf("ranks on %d hosts, want 2: %q", len(byHost), j.lines())
	}
	shmOf := func(i int) string {
		out, _ := e.Command(context.Background(), i, "ls", "/dev/shm").CombinedOutput()
		return string(out)
	}
	for i, h := range e.Hosts[:2] {
		mine, listing := byHost[h.Hostname], shmOf(i)
		for host, p := range byHost {
			name := p[strings.LastIndexByte(p, '/')+1:]
			if has := strings.Contains(listing, name); has != (host == h.Hostname) {
				t.Errorf("host %s's /dev/shm (%q) holds %s: %v (its own segment is %s)", h.Hostname, listing, p, has, mine)
			}
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s of host %s is in this machine's /dev/shm", p, host)
			}
		}
	}
	j.cmd.Process.Kill()
	j.wait(30 * time.Second)
	if !wait.For(10*time.Second, func() bool { return strings.Count(shmOf(0)+shmOf(1), "gorun-shm") == 0 }) {
		t.Fatalf("segments left on the hosts 10s after gorun was SIGKILLed: %q, %q", shmOf(0), shmOf(1))
	}
}
