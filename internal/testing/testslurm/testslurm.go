// Package testslurm makes a real Slurm cluster for tests: one slurmctld and
// several slurmd, Debian's daemons, each on a host of its own made by
// internal/testing/testhosts (its own network, PID, mount and UTS namespaces and
// host name: ctl, n1, n2, ...), with a munged of the test's own. The nodes
// run no sshd. The test process stays in the root namespaces, where it runs
// Slurm's client commands (salloc, sbatch, srun, scancel, scontrol) as a
// user on a login node would, with the cluster's configuration (Env).
//
// It needs what testhosts needs, and slurmctld, slurmd, slurm-client and
// munge (scripts/test-deps.sh installs them). Without them New skips the
// test, except in CI (CI=true), where it fails.
//
// Process tracking is proctrack/cgroup when the machine has a cgroup v1
// freezer hierarchy (each node gets a subtree of it, mounted over the
// hierarchy in the node's mount namespace), else proctrack/linuxproc. The
// nodes share the filesystem with the test, as nodes of a cluster share a
// network filesystem: a program's path is the same on every node.
// Everything is removed when the test ends.
package testslurm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testhosts"
)

// Cluster is a running Slurm cluster: Hosts[0] is the controller (ctl),
// Hosts[1:] are the nodes n1, n2, ...
type Cluster struct {
	*testhosts.Cluster
	Conf   string // its slurm.conf: SLURM_CONF for every client command
	CPUs   int    // the CPUs of each node
	state  string // its state, spool, log and munge files
	munged *exec.Cmd
	freeze string // with proctrack/cgroup: the freezer hierarchy
	t      testing.TB
}

const freezer = "/sys/fs/cgroup/freezer"

// Available reports why a Slurm cluster cannot run here, or "" if it can.
func Available() string {
	if why := testhosts.Available(); why != "" {
		return why
	}
	for _, p := range []string{"slurmctld", "slurmd", "srun", "salloc", "sbatch", "scancel", "scontrol", "sinfo", "munged", "mungekey"} {
		if _, err := exec.LookPath(p); err != nil {
			if _, err := os.Stat("/usr/sbin/" + p); err != nil {
				return "needs " + p + " (slurmctld, slurmd, slurm-client, munge: run scripts/test-deps.sh)"
			}
		}
	}
	return ""
}

// Require skips t when a Slurm cluster cannot run here, or fails it in CI
// (CI=true), where the Slurm tests must run.
func Require(t testing.TB) {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Slurm test cannot run in CI: %s", why)
		}
		t.Skipf("Slurm test skipped: %s", why)
	}
}

// New starts a cluster of n nodes of cpus CPUs each and waits until every
// node is idle; it fails t if that does not happen within a minute.
func New(t testing.TB, n, cpus int) *Cluster {
	t.Helper()
	Require(t)
	// A short path: munged's socket name must fit in a sockaddr_un.
	state, err := os.MkdirTemp("", "gslurm")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{state: state, CPUs: cpus, t: t, Conf: filepath.Join(state, "slurm.conf")}
	t.Cleanup(c.destroy)
	for _, d := range []string{"run", "log", "ctld", "spool", "munge"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(state, 0o755)
	os.Chmod(filepath.Join(state, "munge"), 0o700)
	c.startMunge()
	if st, err := os.Stat(freezer); err == nil && st.IsDir() && isCgroupV1Freezer() {
		c.freeze = freezer
	}
	names := []string{"ctl"}
	for i := range n {
		names = append(names, "n"+strconv.Itoa(i+1))
	}
	opts := testhosts.Options{
		Names: names,
		// The addresses are known once the hosts exist, before the daemons
		// start and read slurm.conf.
		Setup: func(hc *testhosts.Cluster) { c.Cluster = hc; c.writeConf() },
		Daemon: func(h *testhosts.Host) []string {
			if h.Hostname == "ctl" {
				return []string{"slurmctld", "-D", "-f", c.Conf}
			}
			pre := ""
			if c.freeze != "" {
				sub := filepath.Join(c.freeze, filepath.Base(state)+"-"+h.Hostname)
				os.MkdirAll(sub, 0o755)
				pre = "mount --bind " + sub + " " + c.freeze + " && "
			}
			os.MkdirAll(filepath.Join(state, "spool", h.Hostname), 0o755)
			return []string{"/bin/sh", "-c", pre + "exec slurmd -D -f " + c.Conf}
		},
		Ready: func(h *testhosts.Host) error {
			if h.Hostname == "ctl" {
				return c.run("scontrol", "ping")
			}
			out, err := c.output("sinfo", "-h", "-n", h.Hostname, "-o", "%T")
			if err != nil {
				return err
			}
			if s := strings.TrimSpace(out); s != "idle" {
				return fmt.Errorf("node %s is %q", h.Hostname, s)
			}
			return nil
		},
	}
	testhosts.NewWith(t, n+1, opts)
	return c
}

// Env is the environment of a client command: the test's, with SLURM_CONF.
func (c *Cluster) Env() []string {
	return append(os.Environ(), "SLURM_CONF="+c.Conf)
}

// Client returns one of Slurm's client commands (salloc, sbatch, ...),
// run in the test's namespaces with the cluster's configuration.
func (c *Cluster) Client(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = c.Env()
	return cmd
}

// NodeProcs lists the processes on the nodes other than slurmd itself:
// what a job left behind once it is over.
func (c *Cluster) NodeProcs() []testhosts.Proc {
	var out []testhosts.Proc
	for _, p := range c.Procs() {
		if p.Host > 0 {
			out = append(out, p)
		}
	}
	return out
}

// WaitNodesClean waits up to d for NodeProcs to be empty and returns what
// remains.
func (c *Cluster) WaitNodesClean(d time.Duration) []testhosts.Proc {
	deadline := time.Now().Add(d)
	for {
		ps := c.NodeProcs()
		if len(ps) == 0 || time.Now().After(deadline) {
			return ps
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns the named daemon's log (slurmctld, slurmd-n1, ...).
func (c *Cluster) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.state, "log", name+".log"))
	return string(b)
}

func (c *Cluster) writeConf() {
	track := "linuxproc"
	if c.freeze != "" {
		track = "cgroup"
	}
	st := c.state
	ctl := c.Hosts[0]
	var b strings.Builder
	fmt.Fprintf(&b, `ClusterName=gorun
SlurmctldHost=ctl(%s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%s/munge/munge.sock
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=%s/ctld
SlurmdSpoolDir=%s/spool/%%n
SlurmctldPidFile=%s/run/slurmctld.pid
SlurmdPidFile=%s/run/slurmd-%%n.pid
SlurmctldLogFile=%s/log/slurmctld.log
SlurmdLogFile=%s/log/slurmd-%%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
SlurmdParameters=config_overrides
PlugStackConfig=%s/plugstack.conf
ProctrackType=proctrack/%s
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
`, ctl.Addr, st, st, st, st, st, st, st, st, track)
	for _, h := range c.Hosts[1:] {
		fmt.Fprintf(&b, "NodeName=%s NodeHostname=%s NodeAddr=%s CPUs=%d State=UNKNOWN\n", h.Hostname, h.Hostname, h.Addr, c.CPUs)
	}
	b.WriteString("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n")
	c.write("slurm.conf", b.String())
	c.write("plugstack.conf", "")
	c.write("cgroup.conf", "CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n")
}

func (c *Cluster) write(name, text string) {
	if err := os.WriteFile(filepath.Join(c.state, name), []byte(text), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) startMunge() {
	m := filepath.Join(c.state, "munge")
	key := filepath.Join(m, "munge.key")
	if out, err := exec.Command("mungekey", "-c", "-k", key).CombinedOutput(); err != nil {
		c.t.Fatalf("mungekey: %v: %s", err, out)
	}
	os.Chmod(m, 0o755) // clients of any user reach the socket
	cmd := exec.Command("munged", "-F", "--socket="+filepath.Join(m, "munge.sock"), "--key-file="+key,
		"--pid-file="+filepath.Join(m, "munged.pid"), "--log-file="+filepath.Join(c.state, "log", "munged.log"),
		"--seed-file="+filepath.Join(m, "munged.seed"), "--num-threads=4")
	cmd.SysProcAttr = daemonProcAttr()
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("munged: %v", err)
	}
	c.munged = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(m, "munge.sock")); err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("munged did not start: %s", c.Log("munged"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *Cluster) run(name string, args ...string) error {
	_, err := c.output(name, args...)
	return err
}

func (c *Cluster) output(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.Client(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// destroy stops the daemons (testhosts kills the hosts), then munged, and
// removes the files.
func (c *Cluster) destroy() {
	if c.Cluster != nil {
		for i := range c.Hosts {
			c.Stop(i)
		}
	}
	if c.munged != nil {
		c.munged.Process.Kill()
		c.munged.Wait()
	}
	if c.freeze != "" {
		subs, _ := filepath.Glob(filepath.Join(c.freeze, filepath.Base(c.state)+"-*"))
		for _, s := range subs {
			removeCgroups(s)
		}
	}
	os.RemoveAll(c.state)
}

// removeCgroups removes a cgroup directory and those below it, deepest
// first (a cgroup's files cannot be removed, only its directory).
func removeCgroups(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			removeCgroups(filepath.Join(dir, e.Name()))
		}
	}
	syscall.Rmdir(dir)
}

func isCgroupV1Freezer() bool {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == freezer && f[2] == "cgroup" && strings.Contains(f[3], "freezer") {
			return true
		}
	}
	return false
}
