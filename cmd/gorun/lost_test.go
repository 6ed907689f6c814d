package main

// A host lost to the network: gorun and the host's agent watch each other
// with heartbeats over the agent channel (launcher/heartbeat.go).

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testhosts"
	"github.com/gorun-hpc/gorun/internal/testing/wait"
	"github.com/gorun-hpc/gorun/launcher"
)

// jobProcs is what runs on host i of c for a job (the agent, its keeper,
// the ranks): every process there but the ssh server's sessions and
// Slurm's step daemons, which live as long as their connection, not the
// job's.
func jobProcs(c *testhosts.Cluster, i int) []string {
	var out []string
	for _, p := range c.Procs() {
		if p.Host == i && !strings.HasPrefix(p.Cmdline, "sshd:") && !strings.HasPrefix(p.Cmdline, "slurmstepd") {
			out = append(out, fmt.Sprintf("%d %s", p.PID, p.Cmdline))
		}
	}
	return out
}

// linkDown takes host i's link down (the root end of its veth), its
// processes alive, until t ends; then it brings it up again and ends the
// host's sshd sessions and Slurm step daemons, which wait for a peer that
// is gone.
func linkDown(t *testing.T, c *testhosts.Cluster, i int) {
	t.Helper()
	veth := c.Hosts[i].Veth
	if out, err := exec.Command("ip", "link", "set", "dev", veth, "down").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s down: %v: %s", veth, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "set", "dev", veth, "up").CombinedOutput(); err != nil {
			t.Errorf("ip link set %s up: %v: %s", veth, err, out)
		}
		for _, p := range c.Procs() {
			if p.Host == i && (strings.HasPrefix(p.Cmdline, "sshd:") || strings.HasPrefix(p.Cmdline, "slurmstepd")) {
				syscall.Kill(p.PID, syscall.SIGKILL)
			}
		}
	})
}

// checkLost checks how gorun (j) ended after host i of c lost its link
// at cut: within launcher.HeartbeatTimeout and 2 s, with status 1 and a
// last message naming the host (as name) lost; and that within as long
// again nothing of the job is left on the host.
func checkLost(t *testing.T, j *job, c *testhosts.Cluster, i int, name string, cut time.Time) {
	t.Helper()
	bound := launcher.HeartbeatTimeout + 2*time.Second
	code := j.wait(bound + 40*time.Second) // ssh's own keepalive gives up after 30-40 s
	took := j.exitAt.Sub(cut)
	msg := gorunLines(j.errText())
	t.Logf("gorun exited %d %v after host %s's link went down: %q", code, took.Round(time.Millisecond), name, msg)
	want := "host " + name + ": no heartbeat from its agent for " + launcher.HeartbeatTimeout.String()
	if code != 1 || len(msg) == 0 || !strings.Contains(msg[len(msg)-1], want) || !strings.Contains(msg[len(msg)-1], "on host "+name+") is lost") {
		t.Errorf("exit %d, want 1 with a last message naming host %s lost (%q); stderr:\n%s", code, name, want, j.errText())
	}
	if took > bound {
		t.Errorf("gorun took %v to notice the lost host and end the job, want within %v", took, bound)
	}
	var left []string
	if !wait.For(time.Until(j.exitAt.Add(bound)), func() bool { left = jobProcs(c, i); return len(left) == 0 }) {
		t.Fatalf("%v after gorun exited, the job still runs on the cut-off host: %q", bound, left)
	}
	t.Logf("nothing of the job on host %s %v after gorun exited (%v after the cut)",
		name, time.Since(j.exitAt).Round(time.Millisecond), time.Since(cut).Round(time.Millisecond))
}

// TestHostsLinkDown: a host whose link goes down mid-job (its processes
// alive, no connection closed: nothing but silence) is named by gorun, which
// ends the job with a failure, within launcher.HeartbeatTimeout and 2 s;
// and its agent, which hears nothing from gorun either, stops the host's
// ranks and exits (the dead-man switch) within the same bound after that:
// no process of the job is left on the cut-off host.
func TestHostsLinkDown(t *testing.T) {
	e := newHosts(t, 3, 2)
	// A longer login timeout than newHosts's: the start is not what is
	// tested, and three hosts take this gorun at once.
	j := startJob(t, nil, e.args("--ssh-timeout", "30s", "-n", "6", "--hostfile", e.hostfile, bin.rankprog, "mpisleep")...)
	j.waitLines("ready", 6, 60*time.Second)
	if ps := jobProcs(e.Cluster, 2); len(ps) < 3 {
		t.Fatalf("host 2 runs %q, want its agent and 2 ranks at least: the check looks in the wrong place", ps)
	}
	cut := time.Now()
	linkDown(t, e.Cluster, 2)
	checkLost(t, j, e.Cluster, 2, e.Hosts[2].Addr, cut)
	// newHosts checks, once the link is up again, that nothing is left
	// on any host.
}

// TestSlurmLinkDown is TestHostsLinkDown inside a Slurm allocation, whose
// agents srun started and which call gorun back: node n3's link goes down.
func TestSlurmLinkDown(t *testing.T) {
	c := newSlurm(t, 3)
	j := allocJob(t, c, nil, "mpisleep")
	if ps := jobProcs(c.Cluster, 3); len(ps) < 3 {
		t.Fatalf("n3 runs %q, want its agent and 2 ranks at least: the check looks in the wrong place", ps)
	}
	cut := time.Now()
	linkDown(t, c.Cluster, 3)
	checkLost(t, j, c.Cluster, 3, "n3", cut)
}

// TestHostsBusyNotLost: the channel to a host backs up through no fault of
// the link, for longer than launcher.HeartbeatTimeout, and the host is not
// lost. Rank 0, on the host, copies its input to its output; gorun's
// standard output is not read until no input has gone in for longer than the
// timeout, while 64 MB wait to go in: gorun's reader hangs on the output it
// hands on, the agent's on the input its rank does not read, and neither
// side's heartbeat gets through.
// Neither side counts that silence; once the output is read the job ends
// well, with every byte.
func TestHostsBusyNotLost(t *testing.T) {
	e := newHosts(t, 1, 1)
	const size = 64 << 20
	line := bytes.Repeat([]byte("0123456789abcdef"), 8)
	line[len(line)-1] = '\n'
	var fed atomic.Int64
	inR, inW := io.Pipe()
	inSum := make(chan []byte, 1)
	go func() {
		h := sha256.New()
		for fed.Load() < size {
			h.Write(line)
			if _, err := inW.Write(line); err != nil {
				return
			}
			fed.Add(int64(len(line)))
		}
		inW.Close()
		inSum <- h.Sum(nil)
	}()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(bin.gorun, e.args("--ssh-timeout", "30s", "-n", "1", "--host", e.Hosts[0].Addr, bin.rankprog, "stdin")...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		inR.Close()
	})
	started := time.Now().Add(2 * time.Minute)
	for !strings.Contains(strings.Join(jobProcs(e.Cluster, 0), "\n"), bin.rankprog+" stdin") {
		if time.Now().After(started) {
			t.Fatal("rank 0 did not start within 2 minutes")
		}
		select {
		case err := <-exited:
			t.Fatalf("gorun exited (%v) before rank 0 started; stderr:\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}

	// Hold the output until the input, once it began, has stopped going
	// in (everything between is full) for longer than the heartbeat
	// timeout.
	stall := launcher.HeartbeatTimeout + 2*launcher.HeartbeatInterval
	deadline := time.Now().Add(2 * time.Minute)
	last, since := fed.Load(), time.Now()
	for last == 0 || time.Since(since) < stall {
		if time.Now().After(deadline) {
			t.Fatalf("the input never stopped going in for %v while nothing came out (%d of %d bytes in): the test shows nothing", stall, fed.Load(), size)
		}
		select {
		case err := <-exited:
			t.Fatalf("gorun exited (%v) while its output was not read; stderr:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if n := fed.Load(); n != last {
			last, since = n, time.Now()
		}
	}
	if last >= size {
		t.Fatalf("%d of %d bytes went in before the stall: the test shows nothing", last, size)
	}
	t.Logf("%.1f of %.1f MB of input in, none for %v, when gorun's output was first read", float64(last)/1e6, float64(size)/1e6, stall)

	br := bufio.NewReaderSize(outR, 1<<20)
	first, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "pid 0 ") {
		t.Fatalf("first line %q (%v), want rank 0's pid line; stderr:\n%s", first, err, stderr.String())
	}
	h := sha256.New()
	n, err := io.Copy(h, br)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("gorun did not exit 30 s after its output was read")
	}
	if err != nil {
		t.Fatalf("gorun: %v; stderr:\n%s", err, stderr.String())
	}
	if want := <-inSum; n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Errorf("%d bytes out, want the %d that went in, the same", n, size)
	}
}
