package launcher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/bus"
)

// AgentArg is the hidden first argument that makes the gorun binary a host
// agent (RunAgent) instead of a launcher. gorun starts it on every remote
// host of a job, with one ssh login per host; a program other than gorun
// that calls Run with remote hosts must do the same as gorun's main:
//
//	if len(os.Args) > 1 && os.Args[1] == launcher.AgentArg {
//		os.Exit(launcher.RunAgent(os.Stdin, os.Stdout, os.Stderr))
//	}
const AgentArg = "__gorun_agent"

// RunAgent is the host agent: the gorun binary run with AgentArg on a
// remote host, by one ssh login. It reads gorun's frames on in and answers
// on out. It says hello (its platform, cores and address), then runs the
// job it is given: the host's NATS server of the job's cluster, and the
// host's ranks (hostRanks: own process groups, the launch contract's
// environment, this host's share of cores). It forwards their output and
// reports how each ended; it stops them when gorun says so, and by itself
// (SIGTERM, SIGKILL after the grace, and every descendant) as soon as in
// reaches EOF or out fails: gorun, or its ssh session, is gone; and when
// nothing came from gorun for AgentHeartbeatTimeout (heartbeat.go): its host,
// or the network to it, is down. It returns the agent's exit status.
//
// Started by a Slurm step (spawn_slurm.go), whose environment names the
// gorun to call, it talks over the connection it makes to gorun instead
// of in and out. It stops its ranks too on SIGTERM or SIGHUP (scancel,
// srun ending the step).
func RunAgent(in io.Reader, out io.Writer, errOut io.Writer) int {
	becomeSubreaper()
	hostname, _ := os.Hostname()
	hello := agentHello{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.GOMAXPROCS(0), Hostname: hostname}
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) == 4 {
		hello.Addr = f[2]
	}
	if os.Getenv(agentDialEnv) != "" {
		c, err := dialGorun()
		if err != nil {
			fmt.Fprintf(errOut, "gorun agent on %s: %v\n", hostname, err)
			return 1
		}
		defer c.Close()
		in, out = c, c
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			hello.Addr = a.IP.String()
		}
	}
	fw := &frameWriter{w: out}
	if err := fw.json(frameHello, hello); err != nil {
		return 1
	}
	a := &agent{fw: fw, errOut: errOut, gone: make(chan struct{}), stopped: make(chan struct{}), goAhead: make(chan struct{}), allJoined: make(chan struct{}), done: make(chan struct{})}
	live := newLiveness()
	br := bufio.NewReaderSize(liveReader{in, live}, 64<<10)
	go a.read(br, live)
	// The dead-man switch: gorun beats every HeartbeatInterval; a gorun
	// not heard from for AgentHeartbeatTimeout is gone (its host or the network
	// between is down, with no EOF to tell), and the ranks stop.
	go beat(fw, a.gone)
	limit := silenceLimit(AgentHeartbeatTimeout, 2*StartHeartbeatTimeout, a.joined.Load, time.Now())
	go live.watch(limit, a.gone, func() {
		fmt.Fprintf(errOut, "gorun agent on %s: nothing from gorun for %v (no heartbeat): stopping the host's ranks\n", hostname, limit())
		a.lost()
	})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			a.lost()
		}
	}()
	<-a.gone
	a.shutdown()
	return 0
}

// agent is one RunAgent.
type agent struct {
	fw     *frameWriter
	errOut io.Writer

	mu        sync.Mutex
	job       *agentJob
	ranks     *hostRanks
	srv       *bus.Server
	stdinW    *io.PipeWriter
	left      int
	goneOne   sync.Once
	gone      chan struct{}     // gorun or the ssh session is gone (or the job is over)
	joined    atomic.Bool       // every rank of the host returned from Init
	mesh      map[string]string // every server of the job's cluster -> its route listener (frameMesh)
	allOne    sync.Once
	allJoined chan struct{} // every server has joined the mesh (frameMesh)
	goOne     sync.Once
	goAhead   chan struct{} // gorun said go: the job's cluster has formed
	stopOne   sync.Once
	stopped   chan struct{} // gorun said stop (or is gone): ranks not started yet never will be
	done      chan struct{} // closed when every rank has been reported
}

func (a *agent) lost() {
	a.goneOne.Do(func() { close(a.gone) })
	a.stop()
}

// stop says that ranks not started yet are not to start.
func (a *agent) stop() { a.stopOne.Do(func() { close(a.stopped) }) }

// read handles gorun's frames until EOF. While it hands one on (rank 0's
// input to a rank that does not read it, say), live does not count the
// silence.
func (a *agent) read(br *bufio.Reader, live *liveness) {
	defer a.lost()
	var buf []byte
	for {
		kind, b, err := readFrame(br, buf)
		if err != nil {
			return
		}
		buf = b
		live.handling()
		switch kind {
		case frameJob:
			var j agentJob
			if err := json.Unmarshal(b, &j); err != nil {
				a.fw.write(frameFail, []byte("bad job: "+err.Error()))
				return
			}
			if err := a.start(&j); err != nil {
				a.fw.write(frameFail, []byte(err.Error()))
				return
			}
		case frameStdin:
			a.mu.Lock()
			w := a.stdinW
			a.mu.Unlock()
			if w != nil {
				if len(b) == 0 {
					w.Close()
				} else if _, err := w.Write(b); err != nil {
					// rank 0 stopped reading: drop its input
				}
			}
		case frameAsk:
			a.answer(b, frameStates, func(hr *hostRanks) []byte {
				js, _ := json.Marshal(hr.states())
				return js
			})
		case frameDump:
			a.answer(b, frameDumped, func(hr *hostRanks) []byte {
				hr.dumpTraces()
				return nil
			})
		case frameClock:
			if len(b) == 8 {
				a.fw.write(frameTime, b, binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
			}
		case frameMesh:
			var m map[string]string
			if json.Unmarshal(b, &m) == nil {
				a.mu.Lock()
				a.mesh = m
				a.mu.Unlock()
				a.allOne.Do(func() { close(a.allJoined) })
			}
		case frameAdmit:
			var adm admission
			if json.Unmarshal(b, &adm) == nil {
				go a.join(adm)
			}
		case frameGo:
			a.goOne.Do(func() { close(a.goAhead) })
		case frameStop:
			a.stop()
			a.mu.Lock()
			hr, j := a.ranks, a.job
			a.mu.Unlock()
			if hr != nil {
				hr.stop(len(b) > 0 && b[0] == 1, j.Job.JobID)
			}
		}
		live.reading()
	}
}

// answer runs do on the host's ranks in the background, then answers a
// request frame b (its 4-byte id) with kind, the id and what do returned.
func (a *agent) answer(b []byte, kind byte, do func(*hostRanks) []byte) {
	a.mu.Lock()
	hr := a.ranks
	a.mu.Unlock()
	if hr == nil || len(b) != 4 {
		return
	}
	id := bytes.Clone(b)
	go func() {
		if a.fw.write(kind, id, do(hr)) != nil {
			a.lost()
		}
	}()
}

// start starts the job's server (if any) and its ranks.
func (a *agent) start(j *agentJob) error {
	if j.Server != nil {
		srv, err := bus.Start(j.Server)
		if err != nil {
			return err
		}
		j.Job.NATSURL = srv.URL()
		a.mu.Lock()
		a.srv = srv
		a.mu.Unlock()
		if j.Server.Cluster != nil {
			if a.fw.write(frameListen, []byte(net.JoinHostPort(j.Server.Cluster.Advertise, strconv.Itoa(srv.RoutePort())))) != nil {
				a.lost()
			}
		}
	}
	var stdin io.Reader
	for _, p := range j.Job.Procs {
		if p.Rank == 0 {
			r, w := io.Pipe()
			stdin = r
			a.stdinW = w
		}
	}
	a.left = len(j.Job.Procs)
	var hr *hostRanks
	hr = newHostRanks(j.Job.Host, a.forward, func(x rankExit) {
		e := agentExit{Rank: x.Rank, Pid: x.Pid, Code: x.Code, Signal: int(x.Signal), NotStarted: x.NotStarted, Report: x.Report}
		if x.Err != nil {
			e.Err = x.Err.Error()
		}
		a.mu.Lock()
		a.left--
		last := a.left == 0
		a.mu.Unlock()
		if last {
			hr.finish(j.Job.JobID)
		}
		if a.fw.json(frameExit, e) != nil {
			a.lost()
		}
		if last {
			close(a.done)
		}
	})
	hr.onJoined = func() {
		a.joined.Store(true)
		if a.fw.write(frameJoined) != nil {
			a.lost()
		}
	}
	a.mu.Lock()
	a.job, a.ranks = j, hr
	srv := a.srv
	a.mu.Unlock()
	if len(j.Job.Procs) == 0 {
		close(a.done)
	}
	go a.startRanks(hr, j, srv, stdin)
	return nil
}

// startRanks starts the host's ranks once the job's cluster (if the
// host's server is one of it) has formed: the server tells gorun when it
// has a route to every other server of the job (frameRouted), and gorun
// says go (frameGo) once every server has. The ranks' interest then
// reaches every server at once, and no route changes under them (while
// the mesh formed, NATS closing one of two routes to a peer was no loss;
// from then on a route that closes may lose messages, and ends the job).
// A server still without some routes after ClusterFormTimeout says which
// it lacks: gorun ends the job, naming the hosts. Ranks not started when
// gorun says stop are reported as never started.
func (a *agent) startRanks(hr *hostRanks, j *agentJob, srv *bus.Server, stdin io.Reader) {
	ctx := context.Background()
	if srv != nil && j.Server.Cluster != nil {
		lacks := awaitRoutes(srv, j.Server.Cluster.Peers, a.allJoined, a.stopped, func(l []string) bool { return a.repair(srv, l) })
		if lacks == nil {
			lacks = []string{}
		}
		if a.fw.json(frameRouted, lacks) != nil {
			a.lost()
		}
		select {
		case <-a.goAhead:
			// The routes as they are now, before any rank starts: the
			// ones whose loss ends the job.
			srv.WatchRoutes(j.Job.Host, a.gone, func(err error) {
				if a.fw.write(frameFault, []byte(err.Error())) != nil {
					a.lost()
				}
			})
		case <-a.stopped:
		}
	}
	select {
	case <-a.stopped:
		c, cancel := context.WithCancel(ctx)
		cancel()
		ctx = c
	default:
	}
	hr.start(ctx, &j.Job, stdin)
}

// routesPoll is how often an agent looks whether its server has every
// route of the job's mesh, once every server has joined it; before that,
// every routesIdlePoll.
const (
	routesPoll     = 20 * time.Millisecond
	routesIdlePoll = time.Second
)

// meshRepairAfter is how long a server may lack routes, none coming,
// before it dials the peers it lacks itself (see jobCluster.meshed).
const meshRepairAfter = 3 * time.Second

// joinWait bounds how long an admitted server waits for the routes of
// the servers in the mesh before it says it has joined all the same (the
// next may join meanwhile; the mesh's repair, then its verdict, see to
// those it lacks).
const joinWait = 10 * time.Second

// join is the host's server's turn to join the job's mesh (see
// jobCluster): it dials gorun's, then waits until it has a route to every
// server in the mesh, and says so.
func (a *agent) join(adm admission) {
	a.mu.Lock()
	srv := a.srv
	a.mu.Unlock()
	if srv == nil {
		return
	}
	if err := srv.AddRoutes([]string{adm.Seed}); err != nil {
		fmt.Fprintf(a.errOut, "gorun agent: %v\n", err)
	}
	deadline := time.Now().Add(joinWait)
	tick := time.NewTicker(joinPoll)
	defer tick.Stop()
	for srv.NumRoutes() < adm.Routes && time.Now().Before(deadline) {
		select {
		case <-a.stopped:
			return
		case <-tick.C:
		}
	}
	if a.fw.write(frameJoinedMesh) != nil {
		a.lost()
	}
}

// joinPoll is how often a joining server's routes are counted.
const joinPoll = 2 * time.Millisecond

// repair makes the host's server dial the servers of lacks that gorun has
// said where to find (frameMesh: once every server has joined); it
// reports whether it could.
func (a *agent) repair(srv *bus.Server, lacks []string) bool {
	a.mu.Lock()
	m := a.mesh
	a.mu.Unlock()
	if m == nil {
		return false
	}
	var addrs []string
	for _, l := range lacks {
		if addr, ok := m[l]; ok {
			addrs = append(addrs, addr)
		}
	}
	if err := srv.AddRoutes(addrs); err != nil {
		fmt.Fprintf(a.errOut, "gorun agent: %v\n", err)
	}
	return true
}

// routeCounter is what awaitRoutes asks of a server (bus.Server).
type routeCounter interface {
	NumRoutes() int
	Unrouted(peers []string) []string
}

// awaitRoutes waits until srv has a route to every server of peers, and
// returns nil; or returns those it still lacks after ClusterFormTimeout,
// or when stop closes. Those it still lacks once its routes have stopped
// coming for meshRepairAfter, it dials itself (repair, when not nil: once
// it could). While routes keep coming, gossip is at work: routes dialed
// by hand then would be explicit ones, whose news NATS passes on with its
// gossip override (every server that learns of a peer that way tells all
// its routes again), and a forming mesh of many servers drowns in it.
//
// It looks every routesPoll once all closes (every server has joined the
// mesh, see jobCluster.meshed: its routes are all there, or nearly), and
// every routesIdlePoll before: 64 idle agents looking 50 times a second
// each, with the wake-ups of their processes' schedulers, took a third of
// 2 cores from the joins under way.
func awaitRoutes(srv routeCounter, peers []string, all, stop <-chan struct{}, repair func(lacks []string) bool) []string {
	deadline := time.NewTimer(ClusterFormTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(routesIdlePoll)
	defer tick.Stop()
	have, moved := -1, time.Now() // the route count, and when it last changed
	for {
		n := srv.NumRoutes()
		if n >= len(peers) && len(srv.Unrouted(peers)) == 0 {
			return nil
		}
		if n != have {
			have, moved = n, time.Now()
		}
		if repair != nil && time.Since(moved) > meshRepairAfter {
			if lacks := srv.Unrouted(peers); len(lacks) > 0 && repair(lacks) {
				repair = nil
			}
		}
		select {
		case <-tick.C:
		case <-all:
			all = nil
			tick.Reset(routesPoll)
		case <-deadline.C:
			return srv.Unrouted(peers)
		case <-stop:
			return srv.Unrouted(peers)
		}
	}
}

// forward sends one output stream of a rank to gorun, in chunks as they
// come (gorun puts lines together, with its bound on a line's length).
func (a *agent) forward(rank int, stderr bool, r io.ReadCloser) {
	go func() {
		defer r.Close()
		hdr := make([]byte, 5)
		binary.BigEndian.PutUint32(hdr, uint32(rank))
		hdr[4] = 1
		if stderr {
			hdr[4] = 2
		}
		buf := make([]byte, outputChunk)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if a.fw.write(frameOutput, hdr, buf[:n]) != nil {
					a.lost()
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

// shutdown ends the job on this host: SIGTERM to every rank, SIGKILL
// (with every descendant) after the grace, then the server.
func (a *agent) shutdown() {
	a.mu.Lock()
	hr, j, srv := a.ranks, a.job, a.srv
	a.mu.Unlock()
	if hr != nil {
		grace := j.Grace
		if grace <= 0 {
			grace = DefaultConfig().StopGrace
		}
		hr.stop(false, j.Job.JobID)
		select {
		case <-a.done:
		case <-time.After(grace):
			hr.stop(true, j.Job.JobID)
			select {
			case <-a.done:
			case <-time.After(time.Second):
			}
		}
		hr.finish(j.Job.JobID)
	}
	if srv != nil {
		// Bounded: a route to a host that is cut off may hold the
		// server's flush of it; the agent's exit closes what is left.
		stopped := make(chan struct{})
		go func() { srv.Shutdown(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(serverStopWait):
		}
	}
}

// serverStopWait bounds an agent's wait for its server to shut down.
const serverStopWait = 2 * time.Second
