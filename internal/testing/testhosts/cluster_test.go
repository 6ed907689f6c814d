package testhosts

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCluster logs in to every host with the real ssh and sshd, checks that
// the session runs in that host's namespace, that the host reaches the test
// process at the gateway address, and that cleanup leaves nothing behind.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-host tests")
	}
	var c *Cluster
	t.Run("hosts", func(t *testing.T) {
		start := time.Now()
		c = New(t, 3)
		t.Logf("3 hosts up in %v", time.Since(start))
		ln, err := net.Listen("tcp", c.Gateway+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan string, len(c.Hosts))
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 64)
				n, _ := conn.Read(buf)
				got <- strings.TrimSpace(string(buf[:n]))
				conn.Close()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i, h := range c.Hosts {
			out, err := c.SSH(ctx, i, fmt.Sprintf("ip -4 -o addr show dev eth0; bash -c 'echo %s >/dev/tcp/%s/%d'", h.NS, c.Gateway, port))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, h.Addr+"/24") {
				t.Errorf("host %d: session not in its namespace: %q", i, out)
			}
			select {
			case s := <-got:
				if s != h.NS {
					t.Errorf("gateway got %q, want %q", s, h.NS)
				}
			case <-ctx.Done():
				t.Fatalf("host %d did not reach the gateway %s", i, c.Gateway)
			}
		}
		if ps := c.WaitNoProcs(2 * time.Second); len(ps) != 0 {
			t.Errorf("processes left after the sessions ended: %+v", ps)
		}
	})
	if c == nil {
		return
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	for _, h := range c.Hosts {
		if strings.Contains(string(out), h.NS) {
			t.Errorf("namespace %s left after the test", h.NS)
		}
	}
	if exec.Command("ip", "link", "show", c.Bridge).Run() == nil {
		t.Errorf("bridge %s left after the test", c.Bridge)
	}
}

// TestRemovesStale checks that New removes what a crashed run left: a
// namespace and a bridge named after a process that no longer exists.
func TestRemovesStale(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the multi-host tests")
	}
	Require(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid // exited and reaped: no such process now
	ns := fmt.Sprintf("%s%x-1-h1", nsPrefix, pid)
	br := fmt.Sprintf("%s%xk1", bridgePrefix, pid)
	if out, err := run("ip", "netns", "add", ns); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	if out, err := run("ip", "link", "add", br, "type", "bridge"); err != nil {
		run("ip", "netns", "del", ns)
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() { run("ip", "netns", "del", ns); run("ip", "link", "del", br) })
	New(t, 1)
	if out, _ := run("ip", "netns", "list"); strings.Contains(out, ns) {
		t.Errorf("stale namespace %s still there", ns)
	}
	if _, err := run("ip", "link", "show", br); err == nil {
		t.Errorf("stale bridge %s still there", br)
	}
}
