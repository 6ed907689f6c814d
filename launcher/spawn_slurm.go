package launcher

// Agents started by Slurm: inside an allocation, gorun starts the agents of
// the job's nodes with one srun step (one task per node), as Open MPI and
// MPICH start their per-node daemons, so that no ssh is needed between the
// nodes and Slurm accounts for, and cleans up after, everything the job
// runs. srun's standard streams carry only the tasks' merged output, so an
// agent started this way calls gorun back instead: over TLS, to a listener
// gorun opened for the job, whose certificate the agent checks against the
// fingerprint it was given, and it proves it is the job's with a secret.
// Both travel in the step's environment (srun propagates gorun's), never
// on a command line; from then on gorun and the agent speak the agent
// protocol (agent.go) over that connection, as they do over ssh.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The launchers of Config.Launcher.
const (
	LauncherSSH   = "ssh"
	LauncherSlurm = "slurm"
)

// The environment of an agent started by a Slurm step: how it calls gorun.
const (
	agentDialEnv   = "GORUN_AGENT_DIAL"   // host:port of gorun's listener
	agentPinEnv    = "GORUN_AGENT_PIN"    // hex SHA-256 of the listener's certificate (DER)
	agentSecretEnv = "GORUN_AGENT_SECRET" // what the agent proves it is the job's with
)

// frameAuth is the first frame of an agent that called gorun: JSON
// agentAuth. Only then does it say hello.
const frameAuth = 'A'

// agentAuth is who a calling agent is.
type agentAuth struct {
	Secret string
	Node   string // SLURMD_NODENAME: the node it runs on
}

// slurmAgentTimeout bounds the wait for every node's agent to call.
const slurmAgentTimeout = time.Minute

// slurmStep is the srun step that runs a job's agents.
type slurmStep struct {
	cmd   *exec.Cmd
	errs  *tailBuffer // srun's stderr
	ended chan struct{}
	ln    net.Listener
}

// startSlurmAgents starts the agents of hosts (by their index in the plan)
// with one srun step, and returns them once every one has called back.
// adv is the address of this machine the nodes reach it at.
func startSlurmAgents(ctx context.Context, hosts map[int]Host, adv string, logf func(string, ...any)) (map[int]*agentConn, *slurmStep, error) {
	self, _, _, err := selfBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read gorun's own binary: %w", err)
	}
	ln, pin, err := agentListener(adv)
	if err != nil {
		return nil, nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	secret := rand.Text() + rand.Text()
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	k := strconv.Itoa(len(hosts))
	args := []string{
		"--nodes=" + k, "--ntasks=" + k, "--ntasks-per-node=1", "--nodelist=" + strings.Join(names, ","),
		"--kill-on-bad-exit=1", "--cpu-bind=none", "--mpi=none", "--overlap", "--job-name=gorun-agents",
		self, AgentArg,
	}
	cmd := exec.Command("srun", args...)
	cmd.Env = append(os.Environ(),
		agentDialEnv+"="+net.JoinHostPort(adv, strconv.Itoa(port)),
		agentPinEnv+"="+hex.EncodeToString(pin[:]),
		agentSecretEnv+"="+secret)
	st := &slurmStep{cmd: cmd, errs: &tailBuffer{max: 64 << 10}, ended: make(chan struct{}), ln: ln}
	cmd.Stderr = st.errs
	cmd.Stdout = st.errs // the agents write nothing there but a crash
	cmd.SysProcAttr = rankProcAttr()
	if err := cmd.Start(); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("cannot run srun: %w", err)
	}
	logf("srun %s", strings.Join(args, " "))
	go func() { cmd.Wait(); close(st.ended) }()
	t0 := time.Now()
	agents, err := st.gather(ctx, hosts, secret, logf)
	if err != nil {
		return nil, nil, err
	}
	logf("agents of %d nodes started by srun in %v", len(hosts), time.Since(t0).Round(time.Millisecond))
	return agents, st, nil
}

// close ends the step: it waits up to d for srun to end (the agents end
// once gorun closed their connections), then stops it (srun needs SIGTERM:
// one SIGINT only makes it report), and kills it 2 s later.
func (st *slurmStep) close(d time.Duration) {
	if st == nil {
		return
	}
	st.ln.Close()
	select {
	case <-st.ended:
		return
	case <-time.After(d):
	}
	syscall.Kill(-st.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-st.ended:
	case <-time.After(2 * time.Second):
		syscall.Kill(-st.cmd.Process.Pid, syscall.SIGKILL)
		<-st.ended
	}
}

// kill ends the step at once: srun cannot end it while a node is cut off
// (its agent ends its own ranks there, see AgentHeartbeatTimeout).
func (st *slurmStep) kill() {
	if st == nil {
		return
	}
	st.ln.Close()
	syscall.Kill(-st.cmd.Process.Pid, syscall.SIGKILL)
	<-st.ended
}

// closeWriter ends a connection's writing half only: the agent reads EOF
// (the job is over, or gorun is going), while its last frames still come.
type closeWriter struct{ c net.Conn }

func (w closeWriter) Write(p []byte) (int, error) { return w.c.Write(p) }

func (w closeWriter) Close() error {
	if cw, ok := w.c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return w.c.Close()
}

// endReader calls end once, with the error, when reading r fails.
type endReader struct {
	r    io.Reader
	once sync.Once
	end  func(error)
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { e.end(err) })
	}
	return n, err
}

// dialGorun is the agent's side: it calls the gorun its environment names,
// checks gorun's certificate against the pinned fingerprint, and proves it
// is the job's. It removes the variables from its environment.
func dialGorun() (net.Conn, error) {
	addr, pin, secret := os.Getenv(agentDialEnv), os.Getenv(agentPinEnv), os.Getenv(agentSecretEnv)
	for _, v := range []string{agentDialEnv, agentPinEnv, agentSecretEnv} {
		os.Unsetenv(v)
	}
	want, err := hex.DecodeString(pin)
	if err != nil || len(want) != sha256.Size || secret == "" {
		return nil, fmt.Errorf("%s and %s must be set with %s", agentPinEnv, agentSecretEnv, agentDialEnv)
	}
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // the certificate is checked against the pin instead
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("gorun showed no certificate")
			}
			got := sha256.Sum256(raw[0])
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return errors.New("gorun's certificate is not the one pinned")
			}
			return nil
		},
	}
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return nil, fmt.Errorf("calling gorun at %s: %w", addr, err)
	}
	node := os.Getenv("SLURMD_NODENAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	fw := &frameWriter{w: c}
	if err := fw.json(frameAuth, agentAuth{Secret: secret, Node: node}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// prepareSlurm readies cfg for a job whose agents Slurm starts: every
// node must have its slot count (from the allocation), and, unless
// cfg.SSH.Advertise says it, the nodes reach gorun at the address of this
// machine's interface that routes to the first other node.
func prepareSlurm(ctx context.Context, cfg *Config, logf func(string, ...any)) error {
	if u := slotLocal(cfg.Hosts); len(u) > 0 {
		h := cfg.Hosts[u[0]]
		return fmt.Errorf("%s: node %s has no slot count: give -n", h.Source, h)
	}
	first := ""
	for _, h := range cfg.Hosts {
		if !h.IsLocal() {
			first = h.Name
			break
		}
	}
	if cfg.SSH.Copy {
		return errors.New("--copy: not with --launcher slurm, whose nodes run the program at its path (a shared file system); sbcast copies a file to every node of an allocation")
	}
	if first == "" || cfg.SSH.Advertise != "" {
		return nil
	}
	name := first
	if _, err := net.DefaultResolver.LookupHost(ctx, first); err != nil {
		if a := slurmNodeAddr(ctx, first); a != "" {
			name = a
		}
	}
	cfg.SSH.Advertise = addrToward(ctx, name)
	logf("the nodes reach gorun at %s (the route to node %s, %s)", cfg.SSH.Advertise, first, name)
	return nil
}

// slurmNodeAddr is the NodeAddr Slurm knows node by ("" if scontrol does
// not say): a node's name need not resolve on the machine gorun runs on.
func slurmNodeAddr(ctx context.Context, node string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "scontrol", "show", "node", "-o", node).Output()
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "NodeAddr="); ok {
			return v
		}
	}
	return ""
}
