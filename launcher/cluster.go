package launcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorun-hpc/gorun/internal/bus"
)

// jobCluster is how the servers of one job form a NATS cluster: gorun's
// own server is the seed every host's server dials; the servers then find
// each other through it (NATS's route gossip) and connect in a full mesh,
// so that a message between two hosts goes straight between them. Every
// route is TLS with a certificate of the job's CA (see bus.ClusterSpec).
//
// The hosts' servers join one at a time, in the order they said they
// listen (admit): a server admitted dials gorun's, which tells every
// server already in the mesh of it, and each of those dials it (gossip
// that goes no further: NATS marks it so); once it has a route to each of
// them, its agent says so (frameJoinedMesh) and the next is admitted. So
// every pair of servers is dialed once, from one end, and no server ever
// takes more joins than the one under way. All at once, 64 servers on 2
// cores took 46 s to form their mesh: handshakes overran their time under
// the load and were dialed again, some pairs dialed both ways (NATS closes
// one of them), and the repair's explicit routes spread NATS's gossip
// override; one at a time, 8.6-12 s (docs/scale.md).
//
// The mesh is checked, not trusted: each server knows the names of all
// the others (bus.ClusterSpec.Peers), a host's agent starts its ranks only
// once its server has a route to every one of them, and says so (or, after
// ClusterFormTimeout, which it still lacks); gorun says "cluster formed"
// once every server has, and otherwise ends the job naming the hosts whose
// routes did not come up (routed, below). Gossip through one seed was
// measured against explicit routes from every server to every other: on
// 32 and 64 servers starting at once, explicit lists made two to ten
// times the route connections a mesh needs (each pair dialing both ways,
// and NATS closing the duplicates), gossip with retried dials (see
// bus.serverOptions) about the number it needs; and explicit routes each
// dialed from one end only (the gossip made undialable) still took 15-17
// s on 64 servers, a third of it the INFO that NATS sends every server for
// each route an explicit one makes.
type jobCluster struct {
	ca      *bus.CA
	jobID   string
	size    int
	users   []string // the ranks' nkeys (public): every server admits them
	seed    string   // host:port of gorun's route listener, as the hosts reach it
	ports   [2]int
	verbose bool

	mu      sync.Mutex
	members map[string]string   // server name -> its host, as gorun names it; gorun's own included
	lacks   map[string][]string // server name -> the servers it had no route to, as it reported
	start   time.Time           // the first host's server started
	done    bool                // formed or failed: said once
	addrs   map[string]string   // server name -> host:port of its route listener, as reported
	agents  map[string]*frameWriter
	formed  chan struct{} // closed once every agent has been told go (frameGo)
	all     chan struct{} // closed once every server has joined the mesh (meshed)
	queue   []string      // servers that listen, in that order, not yet admitted
	joining string        // the server admitted last, until it has joined (meshed)
	inMesh  int           // servers in the mesh: gorun's and those that joined
}

// ClusterFormTimeout bounds how long a job's servers may take to form
// their mesh before gorun ends the job, naming the hosts without routes.
// Real hosts form a mesh of 64 in about a second (docs/scale.md); 64
// namespace hosts sharing 2 cores took about 30 s.
const ClusterFormTimeout = time.Minute

// ownServer is the name of gorun's own server in a job's cluster.
const ownServer = "gorun-0"

// serverName is the name of the server of host idx (an index into the
// plan's hosts) in a job's cluster.
func serverName(idx int) string { return "gorun-" + strconv.Itoa(idx+1) }

// setMembers records the servers of the job's cluster: gorun's own (on
// this host) and one per remote host with ranks (indexes into hosts).
func (c *jobCluster) setMembers(hosts []Host, idx []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = map[string]string{ownServer: "(gorun's own)"}
	for _, i := range idx {
		c.members[serverName(i)] = hosts[i].String()
	}
	c.lacks = map[string][]string{}
	c.formed = make(chan struct{})
	c.all = make(chan struct{})
}

// peersOf lists the servers other than name.
func (c *jobCluster) peersOf(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var p []string
	for m := range c.members {
		if m != name {
			p = append(p, m)
		}
	}
	slices.Sort(p)
	return p
}

// routed records a server's report: it has a route to every other server
// of the job (lacks empty), or had none to those of lacks when
// ClusterFormTimeout passed. Once every server has reported, it returns
// the verdict, once: ok true and how long the mesh took; or ok false and
// an error naming the hosts whose routes did not come up.
func (c *jobCluster) routed(name string, lacks []string) (took time.Duration, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done || c.members == nil {
		return 0, false, nil
	}
	if _, known := c.members[name]; !known {
		return 0, false, nil
	}
	c.lacks[name] = lacks
	if len(c.lacks) < len(c.members) {
		return 0, false, nil
	}
	c.done = true
	if e := c.formError(); e != nil {
		return 0, false, e
	}
	ws := make([]*frameWriter, 0, len(c.agents))
	for _, w := range c.agents {
		ws = append(ws, w)
	}
	go func() {
		for _, w := range ws {
			w.write(frameGo) // a session that fails is reported by its reader
		}
		close(c.formed)
	}()
	return time.Since(c.start), true, nil
}

// The mesh repair. Gossip leaves a pair of servers unrouted now and then
// (on 64 namespace hosts, a few pairs of the 2080, their dials failed and
// never retried): a server still without some of its routes, none having
// come for meshRepairAfter, dials those peers itself, as explicit routes
// that NATS dials until they stand (not while routes still come: see
// awaitRoutes). For that every agent reports where its server
// listens (frameListen), and gorun, once every server has joined, tells
// every agent where all of them do (frameMesh).

// listens records where a host's server listens for routes, and the
// agent that runs it, and queues the server for its turn to join.
func (c *jobCluster) listens(name, addr string, fw *frameWriter) {
	c.mu.Lock()
	if c.addrs == nil {
		c.addrs = map[string]string{ownServer: c.seed}
		c.agents = map[string]*frameWriter{}
	}
	c.addrs[name] = addr
	c.agents[name] = fw
	c.queue = append(c.queue, name)
	next, adm := c.admitNext()
	c.mu.Unlock()
	if next != nil {
		next.write(frameAdmit, adm) // a session that fails is reported by its reader
	}
}

// admission is what a server is told as it is admitted to the mesh: where
// gorun's server listens for routes (Seed), and how many routes it has
// once it has joined (Routes: one to each server in the mesh).
type admission struct {
	Seed   string
	Routes int
}

// admitNext admits the next server of the queue, if no other is joining:
// it returns its agent and what to tell it (frameAdmit). Called with c.mu
// held.
func (c *jobCluster) admitNext() (*frameWriter, []byte) {
	if c.joining != "" || len(c.queue) == 0 {
		return nil, nil
	}
	if c.inMesh == 0 {
		c.inMesh = 1 // gorun's own
	}
	c.joining, c.queue = c.queue[0], c.queue[1:]
	msg, _ := json.Marshal(admission{Seed: c.seed, Routes: c.inMesh})
	return c.agents[c.joining], msg
}

// meshed takes a server's word that it has joined the mesh (or has given
// up waiting for its routes: the mesh's verdict names what it lacks), and
// admits the next.
func (c *jobCluster) meshed(name string) {
	c.mu.Lock()
	if name != c.joining {
		c.mu.Unlock()
		return
	}
	c.joining = ""
	c.inMesh++
	next, adm := c.admitNext()
	var msg []byte
	var to []*frameWriter
	if c.inMesh == len(c.members) {
		msg, _ = json.Marshal(c.addrs)
		for _, w := range c.agents {
			to = append(to, w)
		}
		select {
		case <-c.all:
		default:
			close(c.all)
		}
	}
	c.mu.Unlock()
	if next != nil {
		next.write(frameAdmit, adm)
	}
	for _, w := range to {
		w.write(frameMesh, msg)
	}
}

// started marks when the first server of a host started forming the mesh.
func (c *jobCluster) started() {
	c.mu.Lock()
	if c.start.IsZero() {
		c.start = time.Now()
	}
	c.mu.Unlock()
}

// overdue is the verdict when some servers never reported within the
// formation's time: those are named as not having formed routes.
func (c *jobCluster) overdue() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done || c.members == nil {
		return nil
	}
	c.done = true
	for m := range c.members {
		if _, ok := c.lacks[m]; !ok {
			c.lacks[m] = []string{"?"}
		}
	}
	return c.formError()
}

// formError names the hosts whose routes did not come up: for each
// server that lacked a route, the hosts it lacked, the servers that
// lacked most first (a host no other reaches shows as lacking all).
// Called with c.mu held, once every server has reported.
func (c *jobCluster) formError() error {
	type host struct {
		name  string
		lacks []string
	}
	var bad []host
	for m, l := range c.lacks {
		if len(l) > 0 {
			bad = append(bad, host{m, l})
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.SortFunc(bad, func(a, b host) int {
		if d := len(b.lacks) - len(a.lacks); d != 0 {
			return d
		}
		return strings.Compare(a.name, b.name)
	})
	var parts []string
	for k, b := range bad {
		if k == 4 {
			parts = append(parts, fmt.Sprintf("and %d more", len(bad)-k))
			break
		}
		if len(b.lacks) == 1 && b.lacks[0] == "?" {
			parts = append(parts, fmt.Sprintf("host %s never said its routes were up", c.members[b.name]))
			continue
		}
		var to []string
		for _, l := range b.lacks {
			to = append(to, c.members[l])
		}
		if len(to) > 3 {
			to = append(to[:3], fmt.Sprintf("%d more", len(to)-3))
		}
		parts = append(parts, fmt.Sprintf("host %s has no route to %d of the %d others (%s)", c.members[b.name], len(b.lacks), len(c.members)-1, strings.Join(to, ", ")))
	}
	return jobFault(fmt.Sprintf("the job's NATS servers did not form their cluster within %v: %s (are the route ports, --route-ports, open between the hosts?)", ClusterFormTimeout, strings.Join(parts, "; ")))
}

// clusterFor readies the cluster of a job that has ranks on other hosts
// (hosts: the remote ones of the plan), and returns the spec of gorun's
// own server in it. advertise ("" for the address of the interface that
// routes to the first remote host) is how the hosts reach gorun.
func clusterFor(ctx context.Context, cfg *Config, jobID string, users []string, hosts []Host) (*jobCluster, *bus.Spec, error) {
	ca, err := bus.NewCA(jobID)
	if err != nil {
		return nil, nil, fmt.Errorf("job certificates: %w", err)
	}
	adv := cfg.SSH.Advertise
	if adv == "" {
		adv = routeAddr(ctx, &cfg.SSH, hosts[0])
	}
	cert, key, err := ca.Issue(adv)
	if err != nil {
		return nil, nil, fmt.Errorf("job certificates: %w", err)
	}
	c := &jobCluster{ca: ca, jobID: jobID, size: len(users), users: users, ports: cfg.RoutePorts, verbose: cfg.Verbose}
	spec := &bus.Spec{
		Name: ownServer, Host: cfg.NATSHost, JobID: jobID, Size: len(users), Users: users, Verbose: cfg.Verbose,
		Cluster: &bus.ClusterSpec{Ports: cfg.RoutePorts, Advertise: adv, CA: ca.CertPEM, Cert: cert, Key: key, TicketKey: ca.TicketKey},
	}
	return c, spec, nil
}

// setSeed records where gorun's server listens for routes.
func (c *jobCluster) setSeed(adv string, port int) {
	c.seed = net.JoinHostPort(adv, strconv.Itoa(port))
}

// specFor is the spec of host idx's server: listening for ranks on
// loopback only, for routes on a port of the range, advertised at the
// address ssh reached the host at, with a key and certificate of its own.
func (c *jobCluster) specFor(idx int, h Host, hello agentHello) (*bus.Spec, error) {
	adv := hello.Addr
	if adv == "" {
		adv = h.Name
	}
	cert, key, err := c.ca.Issue(adv, h.Name, hello.Hostname)
	if err != nil {
		return nil, fmt.Errorf("job certificates: %w", err)
	}
	return &bus.Spec{
		Name: serverName(idx), Host: "127.0.0.1", JobID: c.jobID, Size: c.size, Users: c.users, Verbose: c.verbose,
		Cluster: &bus.ClusterSpec{Ports: c.ports, Advertise: adv, Peers: c.peersOf(serverName(idx)), CA: c.ca.CertPEM, Cert: cert, Key: key, TicketKey: c.ca.TicketKey},
	}, nil
}
