package launcher

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/bus"
)

// formCluster is a jobCluster of gorun's server and hosts a, b and c (plan
// indexes 0, 1, 2).
func formCluster() *jobCluster {
	c := &jobCluster{}
	c.setMembers([]Host{{Name: "a"}, {Name: "b"}, {Name: "c"}}, []int{0, 1, 2})
	c.started()
	return c
}

// TestClusterFormed: the verdict comes once every server has reported,
// and only once; each server waits for the names of all the others.
func TestClusterFormed(t *testing.T) {
	c := formCluster()
	if got := strings.Join(c.peersOf(serverName(1)), " "); got != "gorun-0 gorun-1 gorun-3" {
		t.Errorf("peers of host b's server: %s", got)
	}
	for _, s := range []string{ownServer, serverName(0), serverName(1)} {
		if _, ok, err := c.routed(s, nil); ok || err != nil {
			t.Fatalf("a verdict (%v, %v) before every server reported", ok, err)
		}
	}
	if _, ok, err := c.routed("gorun-9", nil); ok || err != nil {
		t.Fatalf("a server not of the job counted: %v %v", ok, err)
	}
	if _, ok, err := c.routed(serverName(2), nil); !ok || err != nil {
		t.Fatalf("every server reported all its routes: ok %v, err %v", ok, err)
	}
	if _, ok, err := c.routed(serverName(2), nil); ok || err != nil {
		t.Fatalf("a second verdict: %v %v", ok, err)
	}
	if err := c.overdue(); err != nil {
		t.Fatalf("overdue after the verdict: %v", err)
	}
}

// TestClusterFormFails: a host that no server reaches is named first, as
// lacking routes to all the others; a host that never reported is named
// as such.
func TestClusterFormFails(t *testing.T) {
	c := formCluster()
	b := serverName(1)
	c.routed(ownServer, []string{b})
	c.routed(serverName(0), []string{b})
	_, ok, err := c.routed(b, []string{ownServer, serverName(0), serverName(2)})
	if ok || err != nil {
		t.Fatalf("a verdict before host c reported: %v %v", ok, err)
	}
	err = c.overdue()
	if err == nil {
		t.Fatal("no error for a cluster that did not form")
	}
	msg := err.Error()
	first := strings.Index(msg, "host b has no route to 3 of the 3 others")
	if first < 0 || first > strings.Index(msg, "host a has no route to 1") {
		t.Errorf("host b, which no one reached, is not named first: %s", msg)
	}
	if !strings.Contains(msg, "host c never said its routes were up") {
		t.Errorf("host c, which never reported, is not named: %s", msg)
	}
	if _, isFault := err.(jobFault); !isFault {
		t.Errorf("the error is a %T, want a jobFault (it names no rank)", err)
	}
}

// TestMeshRepair: a server that gossip left without its peers (here it
// was given none) dials them itself once it has lacked them for
// meshRepairAfter, from the listeners gorun told its agent of: the wait
// for its routes then ends, well before ClusterFormTimeout.
func TestMeshRepair(t *testing.T) {
	ca, err := bus.NewCA("repair")
	if err != nil {
		t.Fatal(err)
	}
	users, _, err := bus.JobKeys("repair", 1)
	if err != nil {
		t.Fatal(err)
	}
	mesh := map[string]string{}
	var srvs []*bus.Server
	for i := range 3 {
		cert, key, err := ca.Issue("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		name := serverName(i)
		s, err := bus.Start(&bus.Spec{Name: name, JobID: "repair", Size: 1, Users: users, Cluster: &bus.ClusterSpec{
			Listen: "127.0.0.1", Advertise: "127.0.0.1", CA: ca.CertPEM, Cert: cert, Key: key,
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
		mesh[name] = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.RoutePort()))
	}
	a := &agent{errOut: io.Discard, mesh: mesh}
	start := time.Now()
	done := make(chan []string, 1)
	go func() {
		done <- awaitRoutes(srvs[0], []string{serverName(1), serverName(2)}, closed(), make(chan struct{}), func(l []string) bool { return a.repair(srvs[0], l) })
	}()
	select {
	case lacks := <-done:
		if len(lacks) != 0 {
			t.Fatalf("still lacks %v", lacks)
		}
		if took := time.Since(start); took < meshRepairAfter {
			t.Errorf("routes up after %v: before any repair, so the test shows nothing", took)
		}
	case <-time.After(meshRepairAfter + 10*time.Second):
		t.Fatalf("no mesh %v after the wait began: the server did not dial its peers", meshRepairAfter+10*time.Second)
	}
}

// TestWatchEarly: an agent whose session ends before its host's spawner
// took it over ends the job's start with a fault naming its host; one
// taken over does not.
func TestWatchEarly(t *testing.T) {
	taken := &agentConn{host: Host{Name: "h3"}, via: "connection", ended: make(chan struct{}), errs: &tailBuffer{max: 1 << 10}}
	taken.claim()
	close(taken.ended)
	if err := taken.endedEarly(); err != nil {
		t.Errorf("an agent its spawner took over ended the start: %v", err)
	}
	aborts := make(chan error, 1)
	a := &agentConn{host: Host{Name: "h7"}, via: "connection", ended: make(chan struct{}), errs: &tailBuffer{max: 1 << 10}}
	a.watchEarly(func(err error) { aborts <- err })
	close(a.ended)
	select {
	case err := <-aborts:
		if _, ok := err.(jobFault); !ok || !strings.Contains(err.Error(), "host h7: its agent ended before the job started") {
			t.Fatalf("abort with %T %q, want a jobFault naming host h7", err, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no abort for an agent that ended before the job started")
	}
}

// growingMesh is a server whose routes come one by one, every step, until
// it has stop of them; then none come until repair is called, which
// brings the rest.
type growingMesh struct {
	start    time.Time
	step     time.Duration
	stop     int
	mu       sync.Mutex
	repaired time.Time
}

func (g *growingMesh) NumRoutes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.repaired.IsZero() {
		return 10
	}
	return min(g.stop, int(time.Since(g.start)/g.step))
}

func (g *growingMesh) Unrouted(peers []string) []string { return peers[g.NumRoutes():] }

// TestRepairWaitsForStall: a server whose routes keep coming is not
// repaired (routes dialed by hand while gossip works spread NATS's gossip
// override); once none has come for meshRepairAfter, it is.
func TestRepairWaitsForStall(t *testing.T) {
	peers := make([]string, 10)
	for i := range peers {
		peers[i] = serverName(i)
	}
	g := &growingMesh{start: time.Now(), step: meshRepairAfter / 3, stop: 4} // routes until 4 steps: 1.33 x meshRepairAfter
	lastRoute := g.start.Add(time.Duration(g.stop) * g.step)
	lacks := awaitRoutes(g, peers, closed(), make(chan struct{}), func([]string) bool {
		g.mu.Lock()
		g.repaired = time.Now()
		g.mu.Unlock()
		return true
	})
	if len(lacks) != 0 {
		t.Fatalf("still lacks %v", lacks)
	}
	if g.repaired.IsZero() {
		t.Fatal("never repaired")
	}
	if quiet := g.repaired.Sub(lastRoute); quiet < meshRepairAfter {
		t.Errorf("repaired %v after the last route came, while routes came until %v after the wait began: want at least %v of quiet", quiet, lastRoute.Sub(g.start), meshRepairAfter)
	}
}

// TestClusterAdmitsOneAtATime: the hosts' servers are told to join the
// mesh one at a time, in the order they said they listen, each once the
// one before has joined, with the number of routes it will have; once
// the last has joined, every agent is told where every server listens
// (for the mesh's repair).
func TestClusterAdmitsOneAtATime(t *testing.T) {
	c := formCluster()
	c.seed = "10.0.0.1:7000"
	outs := map[string]*bytes.Buffer{}
	frames := func(name string) (kinds []byte, last []byte) {
		r := bufio.NewReader(bytes.NewReader(outs[name].Bytes()))
		for {
			k, b, err := readFrame(r, nil)
			if err != nil {
				return kinds, last
			}
			kinds, last = append(kinds, k), b
		}
	}
	order := []string{serverName(2), serverName(0), serverName(1)}
	for i, name := range order {
		outs[name] = &bytes.Buffer{}
		c.listens(name, "10.0.0."+strconv.Itoa(i+2)+":7000", &frameWriter{w: outs[name]})
	}
	for i, name := range order {
		for k, other := range order {
			kinds, last := frames(other)
			switch {
			case k < i && string(kinds) != "A":
				t.Fatalf("with %s joining, %s (joined) was told %q, want one admission", name, other, kinds)
			case k == i:
				var adm admission
				if string(kinds) != "A" || json.Unmarshal(last, &adm) != nil {
					t.Fatalf("%s, its turn, was told %q %q, want an admission", name, kinds, last)
				}
				if want := (admission{Seed: c.seed, Routes: i + 1}); adm != want {
					t.Errorf("%s admitted with %+v, want %+v", name, adm, want)
				}
			case k > i && len(kinds) != 0:
				t.Fatalf("with %s joining, %s (after it) was told %q: two join at once", name, other, kinds)
			}
		}
		c.meshed(order[(i+1)%len(order)]) // not the one joining: no news
		if kinds, _ := frames(order[(i+1)%len(order)]); len(kinds) > 1 {
			t.Fatalf("a server not joining said it joined, and was told %q", kinds)
		}
		c.meshed(name)
	}
	for _, name := range order {
		kinds, last := frames(name)
		var m map[string]string
		if string(kinds) != "AM" || json.Unmarshal(last, &m) != nil || len(m) != 4 || m[ownServer] != c.seed {
			t.Errorf("%s was told %q %s, want its admission, then where all 4 servers listen", name, kinds, last)
		}
	}
}

// closed is a closed channel: awaitRoutes's word that every server has
// joined the mesh.
func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
