// Package testhosts makes a small cluster of "hosts" for tests: Linux network
// namespaces joined by a bridge, each running a real OpenSSH sshd that lets
// root in with a key made for the test. The test process stays in the root
// namespace and reaches the hosts over the bridge, as a launcher reaches real
// machines; the hosts reach it at the bridge's address (Cluster.Gateway).
//
// It needs root, iproute2 (ip) and openssh-server (/usr/sbin/sshd). Without
// them New skips the test, except in CI (CI=true), where it fails: there the
// multi-host tests must run.
//
// Everything New makes is named after the test process's pid
// ("gorun-t-<pid>-<n>-h<i>" namespaces, "grb<pid>k<n>" bridges) and removed
// by t.Cleanup, even when the test fails; New first removes what a crashed
// run (a pid no longer alive) left behind. The namespaces share the
// filesystem and process table with the test, so a program path is the same
// on every host, and ps sees every host's processes; Cluster.Procs tells them
// apart by network namespace.
package testhosts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// prefix names everything this package makes, so stale leftovers can be found.
const (
	nsPrefix     = "gorun-t-" // namespaces: gorun-t-<pid hex>-<n>-h<i>
	bridgePrefix = "grb"      // bridge: grb<pid hex>k<n>
	vethPrefix   = "grv"      // root side of a veth: grv<pid hex>k<n>h<i>
	lockFile     = "/tmp/gorun-testhosts.lock"
	sshd         = "/usr/sbin/sshd"
)

var clusters atomic.Int32 // per-process counter, part of every name

// Host is one namespace host of a Cluster.
type Host struct {
	NS   string // network namespace name
	Addr string // its IPv4 address on the cluster's bridge
	sshd *exec.Cmd
}

// Cluster is a set of namespace hosts on one bridge.
type Cluster struct {
	Hosts   []Host
	Gateway string // the bridge's address in the root namespace: how hosts reach the test process
	Dir     string // the test's key, config and log files
	Bridge  string // the bridge's name
	Key     string // the private key root logs in with
	t       testing.TB
}

// Available reports why multi-host tests cannot run here, or "" if they can.
func Available() string {
	if why := platform(); why != "" {
		return why
	}
	if os.Geteuid() != 0 {
		return "needs root (network namespaces)"
	}
	for _, p := range []string{"ip", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(p); err != nil {
			return "needs " + p + " (run scripts/test-deps.sh)"
		}
	}
	if _, err := os.Stat(sshd); err != nil {
		return "needs " + sshd + " (openssh-server; run scripts/test-deps.sh)"
	}
	return ""
}

// Require skips t when multi-host tests cannot run here, or fails it in CI
// (CI=true), where they must run.
func Require(t testing.TB) {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("multi-host test cannot run in CI: %s", why)
		}
		t.Skipf("multi-host test skipped: %s", why)
	}
}

// New makes n hosts and starts an sshd on each; it fails t if any step
// fails, and removes everything when t ends.
func New(t testing.TB, n int) *Cluster {
	t.Helper()
	Require(t)
	if n < 1 || n > 200 {
		t.Fatalf("testhosts: %d hosts: want 1 to 200", n)
	}
	unlock := lock(t)
	removeStale(t)
	k := clusters.Add(1)
	pid := os.Getpid()
	c := &Cluster{
		Dir:    t.TempDir(),
		Bridge: fmt.Sprintf("%s%xk%d", bridgePrefix, pid, k),
		t:      t,
	}
	t.Cleanup(c.destroy)
	subnet, err := freeSubnet()
	if err != nil {
		unlock()
		t.Fatal(err)
	}
	c.Gateway = subnet + ".1"
	c.must("ip", "link", "add", c.Bridge, "type", "bridge")
	c.must("ip", "addr", "add", c.Gateway+"/24", "dev", c.Bridge)
	c.must("ip", "link", "set", c.Bridge, "up")
	for i := range n {
		h := Host{
			NS:   fmt.Sprintf("%s%x-%d-h%d", nsPrefix, pid, k, i+1),
			Addr: fmt.Sprintf("%s.%d", subnet, i+2),
		}
		veth := fmt.Sprintf("%s%xk%dh%d", vethPrefix, pid, k, i+1)
		c.must("ip", "netns", "add", h.NS)
		c.Hosts = append(c.Hosts, h)
		c.must("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
		c.must("ip", "link", "set", veth, "master", c.Bridge)
		c.must("ip", "link", "set", veth, "up")
		c.must("ip", "-n", h.NS, "link", "set", "lo", "up")
		c.must("ip", "-n", h.NS, "addr", "add", h.Addr+"/24", "dev", "eth0")
		c.must("ip", "-n", h.NS, "link", "set", "eth0", "up")
		c.must("ip", "-n", h.NS, "route", "add", "default", "via", c.Gateway)
	}
	unlock()
	c.keys()
	for i := range c.Hosts {
		c.startSSHD(&c.Hosts[i])
	}
	for i := range c.Hosts {
		c.waitSSHD(&c.Hosts[i])
	}
	return c
}

// SSHOpts returns the ssh options that log in to the cluster's hosts as root
// with the test's key, ignoring the machine's ssh configuration and known
// hosts: what a test passes to gorun's --ssh-opts or GORUN_SSH_OPTS.
func (c *Cluster) SSHOpts() []string {
	return []string{
		"-F", "/dev/null",
		"-i", c.Key,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=no",
		"-o", "LogLevel=ERROR",
		"-l", "root",
	}
}

// SSH runs a command on host i through the real ssh client and sshd, and
// returns its standard output.
func (c *Cluster) SSH(ctx context.Context, i int, command string) (string, error) {
	args := append(c.SSHOpts(), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", c.Hosts[i].Addr, command)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("ssh %s %q: %v: %s", c.Hosts[i].Addr, command, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Proc is a process found in one of the cluster's namespaces.
type Proc struct {
	PID     int
	Host    int    // index into Cluster.Hosts
	Cmdline string // arguments joined by spaces
}

// Procs lists the processes living in the cluster's namespaces, other than
// the sshd listeners the cluster started: those of ssh sessions, and
// anything they started.
func (c *Cluster) Procs() []Proc {
	nsIno := map[uint64]int{}
	for i, h := range c.Hosts {
		var st syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+h.NS, &st); err == nil {
			nsIno[st.Ino] = i
		}
	}
	listeners := map[int]bool{}
	for _, h := range c.Hosts {
		if h.sshd != nil && h.sshd.Process != nil {
			listeners[h.sshd.Process.Pid] = true
		}
	}
	var out []Proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || listeners[pid] || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			continue
		}
		i, ok := nsIno[st.Ino]
		if !ok {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 {
			continue // gone, or a zombie
		}
		out = append(out, Proc{PID: pid, Host: i, Cmdline: strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")})
	}
	return out
}

// WaitNoProcs waits up to d for Procs to be empty and returns what remains.
func (c *Cluster) WaitNoProcs(d time.Duration) []Proc {
	deadline := time.Now().Add(d)
	for {
		ps := c.Procs()
		if len(ps) == 0 || time.Now().After(deadline) {
			return ps
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills host i's sshd (and so its sessions' connections end as a
// machine going away would end them).
func (c *Cluster) Stop(i int) {
	if p := c.Hosts[i].sshd; p != nil && p.Process != nil {
		p.Process.Kill()
		p.Wait()
		c.Hosts[i].sshd = nil
	}
}

func (c *Cluster) keys() {
	c.Key = filepath.Join(c.Dir, "id_ed25519")
	c.must("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gorun-test", "-f", c.Key)
	c.must("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gorun-test-host", "-f", filepath.Join(c.Dir, "host_ed25519"))
	pub, err := os.ReadFile(c.Key + ".pub")
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "authorized_keys"), pub, 0o600); err != nil {
		c.t.Fatal(err)
	}
	// sshd wants its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) startSSHD(h *Host) {
	conf := filepath.Join(c.Dir, "sshd_config_"+h.NS)
	text := strings.Join([]string{
		"ListenAddress " + h.Addr,
		"Port 22",
		"HostKey " + filepath.Join(c.Dir, "host_ed25519"),
		"AuthorizedKeysFile " + filepath.Join(c.Dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PidFile none",
		"LogLevel ERROR",
		"PrintMotd no",
		"Subsystem sftp internal-sftp",
	}, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(c.Dir, "sshd_"+h.NS+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("ip", "netns", "exec", h.NS, sshd, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sshdProcAttr()
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start sshd in %s: %v", h.NS, err)
	}
	h.sshd = cmd
}

func (c *Cluster) waitSSHD(h *Host) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, "22"), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(c.Dir, "sshd_"+h.NS+".log"))
			c.t.Fatalf("sshd in %s (%s) not listening after 10s: %v\nsshd log:\n%s", h.NS, h.Addr, err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// destroy removes everything New made; it runs from t.Cleanup.
func (c *Cluster) destroy() {
	for i := range c.Hosts {
		c.Stop(i)
	}
	for _, h := range c.Hosts {
		killNS(h.NS)
		run("ip", "netns", "del", h.NS)
	}
	if c.Bridge != "" {
		run("ip", "link", "del", c.Bridge)
	}
}

func (c *Cluster) must(args ...string) {
	c.t.Helper()
	if out, err := run(args...); err != nil {
		c.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// killNS kills every process in namespace ns.
func killNS(ns string) {
	out, _ := run("ip", "netns", "pids", ns)
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// lock serializes set-up between test processes (packages test in parallel)
// so two clusters do not pick the same subnet.
func lock(t testing.TB) (unlock func()) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// removeStale removes namespaces and bridges left by test processes that
// are no longer alive.
func removeStale(t testing.TB) {
	dead := func(hexPID string) bool {
		pid, err := strconv.ParseInt(hexPID, 16, 64)
		if err != nil {
			return false
		}
		err = syscall.Kill(int(pid), 0)
		return errors.Is(err, syscall.ESRCH)
	}
	out, _ := run("ip", "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		pid, _, _ := strings.Cut(strings.TrimPrefix(f[0], nsPrefix), "-")
		if dead(pid) {
			t.Logf("testhosts: removing stale namespace %s", f[0])
			killNS(f[0])
			run("ip", "netns", "del", f[0])
		}
	}
	out, _ = run("ip", "-o", "link", "show", "type", "bridge")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if !strings.HasPrefix(name, bridgePrefix) {
			continue
		}
		pid, _, ok := strings.Cut(strings.TrimPrefix(name, bridgePrefix), "k")
		if ok && dead(pid) {
			t.Logf("testhosts: removing stale bridge %s", name)
			run("ip", "link", "del", name)
		}
	}
}

// freeSubnet picks a 10.213.X.0/24 that no interface of the root namespace
// uses yet.
func freeSubnet() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for x := 1; x < 255; x++ {
		_, cand, _ := net.ParseCIDR(fmt.Sprintf("10.213.%d.0/24", x))
		used := false
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && (cand.Contains(n.IP) || n.Contains(cand.IP)) {
				used = true
				break
			}
		}
		if !used {
			return fmt.Sprintf("10.213.%d", x), nil
		}
	}
	return "", errors.New("testhosts: no free 10.213.X.0/24 subnet")
}
