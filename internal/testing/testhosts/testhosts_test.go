package testhosts

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/wait"
)

// TestHostsAreMachines checks that two hosts are as separate as two
// machines: own host names, own PID numbering (each sees only its own
// processes, its sshd as PID 1), and a PID namespace other than the test's.
func TestHostsAreMachines(t *testing.T) {
	c := New(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	self, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	var nss []string
	for i, h := range c.Hosts {
		out, err := c.SSH(ctx, i, "uname -n; readlink /proc/self/ns/pid; ps -e -o pid=,comm=; echo $$")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[0] != h.Hostname {
			t.Errorf("host %d: uname -n %q, want %q", i, lines[0], h.Hostname)
		}
		if lines[1] == self {
			t.Errorf("host %d shares the test's PID namespace %s", i, self)
		}
		nss = append(nss, lines[1])
		ps := strings.Join(lines[2:len(lines)-1], "\n")
		if !strings.Contains(ps, "1 sshd") {
			t.Errorf("host %d: sshd is not PID 1:\n%s", i, ps)
		}
		if strings.Contains(ps, " go\n") || len(lines) > 12 {
			t.Errorf("host %d sees processes of other hosts or the test:\n%s", i, ps)
		}
		// The shell's pid in the host's numbering maps back to a process
		// the test sees on that host.
		nspid, _ := strconv.Atoi(lines[len(lines)-1])
		if nspid <= 1 {
			t.Errorf("host %d: shell pid %q", i, lines[len(lines)-1])
		}
	}
	if nss[0] == nss[1] {
		t.Errorf("both hosts in PID namespace %s", nss[0])
	}
	// Command runs inside a host: its host name, its processes.
	out, err := c.Command(ctx, 1, "uname", "-n").Output()
	if err != nil || strings.TrimSpace(string(out)) != "h2" {
		t.Errorf("Command on host 1: %q, %v", out, err)
	}
}

// TestRootPID maps a pid printed inside a host to the test's numbering.
func TestRootPID(t *testing.T) {
	c := New(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := c.Command(ctx, 0, "/bin/sh", "-c", "echo $$; exec sleep 30")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 32)
	n, _ := stdout.Read(buf)
	nspid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("pid line %q", buf[:n])
	}
	// The shell execs sleep after it printed its pid: wait for that too.
	var root int
	var b []byte
	wait.For(5*time.Second, func() bool {
		if root, err = c.RootPID(0, nspid); err != nil {
			return false
		}
		b, _ = os.ReadFile("/proc/" + strconv.Itoa(root) + "/cmdline")
		return strings.HasPrefix(string(b), "sleep")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "sleep") {
		t.Errorf("root pid %d (host pid %d) runs %q, want sleep", root, nspid, b)
	}
}

// TestShape checks that a shaped link carries about its rate, and that
// LinkBytes counts what crossed it.
func TestShape(t *testing.T) {
	c := New(t, 2)
	c.Shape(0, "80mbit")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rx0, _ := c.LinkBytes(0)
	start := time.Now()
	// 5 MB from host 2 to host 1 through ssh: 10 MB/s at most at 80 Mbit/s.
	const size = 5 << 20
	_, err := c.SSH(ctx, 1, "head -c "+strconv.Itoa(size)+" /dev/zero | ssh -F /dev/null -i "+c.Key+
		" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -l root "+c.Hosts[0].Addr+" 'cat >/dev/null'")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	rx1, _ := c.LinkBytes(0)
	if rx1-rx0 < size {
		t.Errorf("host 1 received %d bytes, want at least %d", rx1-rx0, size)
	}
	rate := float64(size) / took.Seconds() / 1e6
	t.Logf("5 MB through an 80 Mbit/s link: %v (%.1f MB/s)", took.Round(time.Millisecond), rate)
	if rate > 12 {
		t.Errorf("%.1f MB/s through a link shaped to 10 MB/s", rate)
	}
}
