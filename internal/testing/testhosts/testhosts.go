// Package testhosts makes a small cluster of "hosts" for tests that behave
// like separate machines: each host has its own network namespace (joined to
// the others by a bridge), its own PID namespace (its sshd is its PID 1, and
// a host's processes cannot see, signal or read the memory of another's),
// its own mount namespace (with its own /proc) and its own UTS namespace
// (hostname h1, h2, ...), with an /etc/hosts that names every host. Each
// runs a real OpenSSH sshd that lets root in with a key made for the test,
// or, made with NewWith, a daemon of the test's instead (package testslurm
// runs slurmctld and slurmd that way). The test process stays in the root
// namespaces and reaches the hosts over the bridge, as a launcher reaches
// real machines; the hosts reach it at the bridge's address
// (Cluster.Gateway).
//
// It needs root, iproute2 (ip, tc), util-linux (nsenter, unshare) and
// openssh-server (/usr/sbin/sshd). Without them New skips the test, except
// in CI (CI=true), where it fails: there the multi-host tests must run.
//
// Everything New makes is named after the test process's pid
// ("gorun-t-<pid>-<n>-h<i>" namespaces, "grb<pid>k<n>" bridges) and removed
// by t.Cleanup, even when the test fails; New first removes what a crashed
// run (a pid no longer alive) left behind. The hosts share the filesystem
// with the test (as an NFS-shared cluster would), so a program path is the
// same on every host. The test, in the root PID namespace, sees every host's
// processes: Cluster.Procs lists them per host, Cluster.RootPID turns a pid
// a rank printed (its host's numbering) into the test's, and Cluster.Command
// runs a command inside a host. Shape limits a host's link with tc, and
// LinkBytes reads what crossed it.
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
	NS       string // network namespace name
	Addr     string // its IPv4 address on the cluster's bridge
	Hostname string // its host name (UTS namespace): h1, h2, ...
	Veth     string // the root namespace's end of its link, on the bridge
	sshd     *exec.Cmd
	init     int // the host's PID 1 (its sshd), as the root namespace numbers it
}

// Cluster is a set of namespace hosts on one bridge.
type Cluster struct {
	Hosts   []Host
	Gateway string // the bridge's address in the root namespace: how hosts reach the test process
	Dir     string // the test's key, config and log files
	Bridge  string // the bridge's name
	Key     string // the private key root logs in with (New; not with a Daemon)
	t       testing.TB
	opts    Options
}

// Available reports why multi-host tests cannot run here, or "" if they can.
func Available() string {
	if why := platform(); why != "" {
		return why
	}
	if os.Geteuid() != 0 {
		return "needs root (network namespaces)"
	}
	for _, p := range []string{"ip", "tc", "nsenter", "unshare", "ssh", "ssh-keygen"} {
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

// Options change what NewWith makes. The zero value makes what New makes.
type Options struct {
	// Names are the hosts' host names; nil means h1, h2, ...
	Names []string

	// Daemon is the command line each host's PID 1 runs, in the host's
	// namespaces, instead of sshd (so that host runs no sshd); nil means
	// sshd. It is given the host.
	Daemon func(h *Host) []string

	// Setup, if not nil, runs once every host has its address, before
	// any daemon starts (to write the daemons' configuration).
	Setup func(c *Cluster)

	// Ready says whether host h's daemon is up (nil error), polled every
	// 10 ms for up to 30 s after it started; nil means sshd's port answers.
	Ready func(h *Host) error
}

// New makes n hosts and starts an sshd on each; it fails t if any step
// fails, and removes everything when t ends.
func New(t testing.TB, n int) *Cluster { return NewWith(t, n, Options{}) }

// NewWith makes n hosts as New does, with opts. Every host's /etc/hosts
// (its own, in its mount namespace) names every host of the cluster.
func NewWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	Require(t)
	if opts.Names != nil && len(opts.Names) != n {
		t.Fatalf("testhosts: %d names for %d hosts", len(opts.Names), n)
	}
	if n < 1 || n > 200 {
		t.Fatalf("testhosts: %d hosts: want 1 to 200", n)
	}
	unlock := lock(t)
	removeStale(t)
	if err := roomForNeighbors(n); err != nil {
		unlock()
		t.Fatal(err)
	}
	k := clusters.Add(1)
	pid := os.Getpid()
	c := &Cluster{
		Dir:    t.TempDir(),
		Bridge: fmt.Sprintf("%s%xk%d", bridgePrefix, pid, k),
		t:      t,
		opts:   opts,
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
		veth := fmt.Sprintf("%s%xk%dh%d", vethPrefix, pid, k, i+1)
		h := Host{
			NS:       fmt.Sprintf("%s%x-%d-h%d", nsPrefix, pid, k, i+1),
			Addr:     fmt.Sprintf("%s.%d", subnet, i+2),
			Hostname: fmt.Sprintf("h%d", i+1),
			Veth:     veth,
		}
		if opts.Names != nil {
			h.Hostname = opts.Names[i]
		}
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
	c.writeHosts()
	if opts.Daemon == nil {
		c.keys()
	}
	if opts.Setup != nil {
		opts.Setup(c)
	}
	for i := range c.Hosts {
		c.startSSHD(&c.Hosts[i])
	}
	for i := range c.Hosts {
		c.waitSSHD(&c.Hosts[i])
	}
	return c
}

// writeHosts writes the /etc/hosts every host mounts over its own: every
// host's name and address, and the test's (Gateway) as "gateway".
func (c *Cluster) writeHosts() {
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n" + c.Gateway + " gateway\n")
	for _, h := range c.Hosts {
		b.WriteString(h.Addr + " " + h.Hostname + "\n")
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "etc-hosts"), []byte(b.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// SSHOpts returns the ssh options that log in to the cluster's hosts as root
// with the test's key, ignoring the machine's ssh configuration and known
// hosts: what a test passes to gorun's --ssh-opts or GORUN_SSH_OPTS.
//
// The key exchange is curve25519's alone: OpenSSH 9's default,
// sntrup761x25519 (post-quantum), costs the client about 170 ms of CPU a
// login here against 24 ms, and the hosts are namespaces of this machine,
// whose traffic never leaves it. 64 logins on 2 cores spent most of a
// 64-host job's first seconds in it (docs/scale.md); a user's own ssh
// configuration chooses for real hosts.
func (c *Cluster) SSHOpts() []string {
	return []string{
		"-F", "/dev/null",
		"-o", "KexAlgorithms=curve25519-sha256",
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
			listeners[h.sshd.Process.Pid] = true // unshare, which waits for the host's PID 1
			listeners[h.init] = true
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

// Stop kills host i's sshd, its PID 1, and with it every process of the
// host, as a machine going away would: its connections end.
func (c *Cluster) Stop(i int) {
	h := &c.Hosts[i]
	if p := h.sshd; p != nil && p.Process != nil {
		if h.init > 0 {
			syscall.Kill(h.init, syscall.SIGKILL)
		}
		p.Process.Kill()
		p.Wait()
		h.sshd = nil
		h.init = 0
	}
}

// RootPID returns the pid, as the test (the root PID namespace) numbers it,
// of the process that host i numbers pid; ranks print their own pids in
// their host's numbering.
func (c *Cluster) RootPID(i, pid int) (int, error) {
	for _, p := range c.Procs() {
		if p.Host != i {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) > 1 && f[len(f)-1] == strconv.Itoa(pid) {
					return p.PID, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("testhosts: no process %d on host %d (%s)", pid, i, c.Hosts[i].Hostname)
}

// Command returns a command that runs inside host i: in all its namespaces
// (network, PID, mount, UTS), as a process logged in there would run.
func (c *Cluster) Command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	a := append([]string{"--target", strconv.Itoa(c.Hosts[i].init), "--all", "--", name}, args...)
	return exec.CommandContext(ctx, "nsenter", a...)
}

// Shape limits host i's link to rate (a tc rate, e.g. "200mbit") in both
// directions, with a token bucket filter (tbf) on each end of its veth
// pair: what the host sends, and what it receives.
func (c *Cluster) Shape(i int, rate string) {
	c.t.Helper()
	h := c.Hosts[i]
	// burst: at least rate/HZ; 256 KiB serves up to a few Gbit/s at HZ 1000.
	tbf := []string{"root", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"}
	c.must(append([]string{"tc", "-n", h.NS, "qdisc", "replace", "dev", "eth0"}, tbf...)...)
	c.must(append([]string{"tc", "qdisc", "replace", "dev", h.Veth}, tbf...)...)
}

// LinkBytes returns the bytes host i has received and sent over its link
// so far, as its veth counts them (every packet: payload, headers, ssh).
func (c *Cluster) LinkBytes(i int) (rx, tx uint64) {
	read := func(name string) uint64 {
		// The root end of the veth: what it transmits, the host receives.
		b, err := os.ReadFile("/sys/class/net/" + c.Hosts[i].Veth + "/statistics/" + name)
		if err != nil {
			c.t.Fatalf("testhosts: link counters of host %d: %v", i, err)
		}
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return v
	}
	return read("tx_bytes"), read("rx_bytes")
}

// CacheDir is host h's cache directory (its sessions' XDG_CACHE_HOME): a
// directory of the test's own, one per host.
func (c *Cluster) CacheDir(h *Host) string {
	return filepath.Join(c.Dir, "cache-"+h.Hostname)
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
	argv := c.sshdArgs(h)
	if c.opts.Daemon != nil {
		argv = c.opts.Daemon(h)
	}
	log, err := os.Create(filepath.Join(c.Dir, "daemon_"+h.NS+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer log.Close()
	// Not `ip netns exec`: it remounts /sys and does not make a PID
	// namespace. nsenter enters the network namespace and execs unshare,
	// which makes the PID, mount and UTS namespaces and forks the host's
	// PID 1: a shell that mounts the host's own /proc, /etc/hosts and
	// /dev/shm (two hosts never share memory, as two machines do not), and
	// empty shell start-up files over the user's (an ssh login runs them:
	// this machine's may run slow tools, such as a Python version manager
	// that takes a lock per login, which is not what a host has), sets
	// its host name and becomes the daemon (sshd reaps every orphan of the
	// host). When unshare dies (Pdeathsig: with the test), --kill-child
	// kills the daemon, and the kernel every other process of the PID
	// namespace.
	args := []string{"--net=/run/netns/" + h.NS, "--",
		"unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--propagation", "private", "--mount-proc", "--",
		"/bin/sh", "-c", `echo "$0" >/proc/sys/kernel/hostname && mount --bind "$1" /etc/hosts && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && for f in "$HOME/.bashrc" "$HOME/.bash_profile" "$HOME/.profile"; do if [ -f "$f" ]; then mount --bind /dev/null "$f"; fi; done; shift && exec "$@"`,
		h.Hostname, filepath.Join(c.Dir, "etc-hosts")}
	cmd := exec.Command("nsenter", append(args, argv...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sshdProcAttr()
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s in %s: %v", argv[0], h.NS, err)
	}
	h.sshd = cmd
}

// sshdArgs writes host h's sshd configuration and returns sshd's command
// line.
func (c *Cluster) sshdArgs(h *Host) []string {
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
		// Each host's own cache directory (as on separate machines), so
		// what gorun caches there is the test's, not the machine's.
		"SetEnv XDG_CACHE_HOME=" + c.CacheDir(h),
	}, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return []string{sshd, "-D", "-e", "-f", conf}
}

// findInit finds host h's PID 1: the child of its unshare.
func (c *Cluster) findInit(h *Host) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.sshd.Process.Pid, h.sshd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

func (c *Cluster) waitSSHD(h *Host) {
	ready := c.opts.Ready
	if ready == nil {
		ready = func(h *Host) error {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, "22"), time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready(h)
		if err == nil {
			if h.init = c.findInit(h); h.init > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(c.Dir, "daemon_"+h.NS+".log"))
			c.t.Fatalf("the daemon of host %s (%s, %s) not ready after 30s: %v\nits log:\n%s", h.Hostname, h.NS, h.Addr, err, b)
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

// The kernel's ARP table is one for every network namespace, and its
// limits (net.ipv4.neigh.default.gc_thresh1-3: 128, 512 and 1024 by
// default) count every namespace's entries together: 33 hosts that each
// talk to all the others fill it, and the kernel then drops packets to
// new neighbors ("neighbor table overflow!"): a job's servers could not
// dial some of the others for good, where real machines, each with its
// own table, would. neighThresh are the limits roomForNeighbors raises
// to, per neighbor entry that n hosts (and the test, and a cluster
// beside it) may hold: n*n.
var neighThresh = []struct {
	file    string
	perPair int
}{
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh1", 1},
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh2", 2},
	{"/proc/sys/net/ipv4/neigh/default/gc_thresh3", 4},
}

// roomForNeighbors raises the ARP table's limits (never lowers them) so
// that n hosts that each talk to every other fit in it, with room for
// another cluster of as many beside.
func roomForNeighbors(n int) error {
	pairs := (n + 1) * (n + 1)
	for _, th := range neighThresh {
		b, err := os.ReadFile(th.file)
		if err != nil {
			return fmt.Errorf("testhosts: %v", err)
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("testhosts: %s: %v", th.file, err)
		}
		if want := 2 * pairs * th.perPair; want > have {
			if err := os.WriteFile(th.file, []byte(strconv.Itoa(want)), 0o644); err != nil {
				return fmt.Errorf("testhosts: raising the ARP table's limit for %d hosts: %v", n, err)
			}
		}
	}
	return nil
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
