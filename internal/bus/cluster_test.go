package bus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/subject"
	"github.com/gorun-hpc/gorun/internal/testing/wait"
)

// clusterJob is the job of startCluster's servers: two ranks.
const clusterJob = "test"

// startCluster starts n job servers on loopback that form one cluster
// through the first, as the servers of n hosts do. It returns them and the
// ranks' seeds.
func startCluster(t *testing.T, n int, ca *CA) ([]*Server, []string) {
	return startClusterWith(t, n, ca, nil, false)
}

// startClusterWith is startCluster with tune changing each server's spec
// (when not nil), and, with oneByOne, each server in the mesh before the
// next starts (so that each is dialed by those before it).
func startClusterWith(t *testing.T, n int, ca *CA, tune func(i int, spec *Spec), oneByOne bool) ([]*Server, []string) {
	t.Helper()
	users, seeds, err := JobKeys(clusterJob, 2)
	if err != nil {
		t.Fatal(err)
	}
	var srvs []*Server
	for i := range n {
		cert, key, err := ca.Issue("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		spec := &Spec{Name: "gorun-" + strconv.Itoa(i), JobID: clusterJob, Size: 2, Users: users, Cluster: &ClusterSpec{
			Listen: "127.0.0.1", Advertise: "127.0.0.1", CA: ca.CertPEM, Cert: cert, Key: key, TicketKey: ca.TicketKey,
		}}
		if i > 0 {
			spec.Cluster.Seeds = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(srvs[0].RoutePort()))}
		}
		if tune != nil {
			tune(i, spec)
		}
		s, err := Start(spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
		if oneByOne {
			waitMesh(t, srvs, time.Now().Add(10*time.Second))
		}
	}
	return srvs, seeds
}

// waitMesh waits until every server has a route to every other, until
// deadline.
func waitMesh(t *testing.T, srvs []*Server, deadline time.Time) {
	t.Helper()
	for _, s := range srvs {
		if !wait.For(time.Until(deadline), func() bool { return s.ns.NumRoutes() == len(srvs)-1 }) {
			t.Fatalf("a server has %d routes, want %d", s.ns.NumRoutes(), len(srvs)-1)
		}
	}
}

// TestClusterFullMesh: servers that know only the first one form a full
// mesh (each has a route to every other), and a message published on one
// reaches a subscriber on another.
func TestClusterFullMesh(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	srvs, seeds := startCluster(t, 4, ca)
	deadline := time.Now().Add(10 * time.Second)
	waitMesh(t, srvs, deadline)
	// Rank 1 on the fourth server, rank 0 on the second.
	sub := connectAs(t, srvs[3].URL(), seeds[1], make(chan error, 1))
	s, _ := sub.SubscribeSync(subject.InboxAll(clusterJob, 1))
	sub.Flush()
	pub := connectAs(t, srvs[1].URL(), seeds[0], make(chan error, 1))
	for {
		pub.Publish(subject.Inbox(clusterJob, 1, 0), []byte("hi"))
		if m, err := s.NextMsg(50 * time.Millisecond); err == nil {
			if string(m.Data) != "hi" {
				t.Fatalf("got %q", m.Data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no message across the cluster")
		}
	}
}

// TestClusterRejectsOtherCA: a server with a certificate of another job's
// CA cannot join (TLS on routes authenticates both ends).
func TestClusterRejectsOtherCA(t *testing.T) {
	ca, _ := NewCA("a")
	other, _ := NewCA("b")
	srvs, _ := startCluster(t, 1, ca)
	users, _, _ := JobKeys(clusterJob, 1)
	cert, key, _ := other.Issue("127.0.0.1")
	s, err := Start(&Spec{Name: "intruder", JobID: clusterJob, Size: 1, Users: users, Cluster: &ClusterSpec{
		Listen: "127.0.0.1", Advertise: "127.0.0.1", CA: other.CertPEM, Cert: cert, Key: key,
		Seeds: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(srvs[0].RoutePort()))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	// Its CA's certificate, but not the job's: the same name, another key.
	time.Sleep(1500 * time.Millisecond)
	if n := srvs[0].ns.NumRoutes() + s.ns.NumRoutes(); n != 0 {
		t.Fatalf("%d routes between servers of different CAs", n)
	}
}

// TestRoutePortRange: with a range, the route port is in it, and a taken
// port is skipped.
func TestRoutePortRange(t *testing.T) {
	// A taken port whose next one is free.
	var taken int
	for {
		l, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken = l.Addr().(*net.TCPAddr).Port
		if next, err := net.Listen("tcp", "0.0.0.0:"+strconv.Itoa(taken+1)); err == nil {
			next.Close()
			break
		}
	}
	ca, _ := NewCA("r")
	cert, key, _ := ca.Issue("127.0.0.1")
	users, _, _ := JobKeys("r", 1)
	s, err := Start(&Spec{Name: "r", JobID: "r", Size: 1, Users: users, Cluster: &ClusterSpec{
		Ports: [2]int{taken, taken + 1}, CA: ca.CertPEM, Cert: cert, Key: key,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.RoutePort() != taken+1 {
		t.Fatalf("route port %d, want %d (%d is taken)", s.RoutePort(), taken+1, taken)
	}
	_, err = Start(&Spec{Name: "r2", JobID: "r", Size: 1, Users: users, Cluster: &ClusterSpec{
		Ports: [2]int{taken, taken}, CA: ca.CertPEM, Cert: cert, Key: key,
	}})
	if err == nil {
		t.Fatal("a server started with its only route port taken")
	}
}

// TestClusterRankIdentity: a rank's key admits it to every server of the
// job's cluster with the same permissions: on a server other than the
// first, rank 1 can neither publish as rank 0 nor read rank 0's inbox.
func TestClusterRankIdentity(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	srvs, seeds := startCluster(t, 3, ca)
	errs := make(chan error, 4)
	nc := connectAs(t, srvs[2].URL(), seeds[1], errs)
	nc.SubscribeSync(subject.InboxAll(clusterJob, 0))
	nc.Publish(subject.Inbox(clusterJob, 1, 0), []byte("forged"))
	nc.Flush()
	want := []string{
		`subscription to "` + subject.InboxAll(clusterJob, 0) + `"`,
		`publish to "` + subject.Inbox(clusterJob, 1, 0) + `"`,
	}
	var got []string
	for range want {
		select {
		case err := <-errs:
			got = append(got, strings.ToLower(err.Error()))
		case <-time.After(5 * time.Second):
			t.Fatalf("the server let rank 1 do it; errors so far: %q", got)
		}
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(got, "\n"), strings.ToLower("permissions violation for "+w)) {
			t.Errorf("no permissions violation for %s: %q", w, got)
		}
	}
}

// TestWatchRoutes: a server's watch says nothing while its routes stay,
// and names the route once one it had closes (here: the other server
// went); after stop, it says nothing more.
func TestWatchRoutes(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	srvs, _ := startCluster(t, 3, ca)
	waitMesh(t, srvs, time.Now().Add(10*time.Second))
	lost := make(chan error, 2)
	stop := make(chan struct{})
	srvs[0].WatchRoutes("h0", stop, func(err error) { lost <- err })
	quiet := make(chan struct{})
	srvs[1].WatchRoutes("h1", quiet, func(err error) { lost <- err })
	select {
	case err := <-lost:
		t.Fatalf("a route lost while all stay: %v", err)
	case <-time.After(10 * routePoll):
	}
	close(quiet) // h1 stops watching: its own end below is no news from it
	srvs[1].Shutdown()
	select {
	case err := <-lost:
		var rl *routeLost
		if !errors.As(err, &rl) || rl.host != "h0" || rl.peer != "127.0.0.1" {
			t.Errorf("lost: %v", err)
		}
		t.Logf("%v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no word of the route that closed")
	}
	close(stop)
	srvs[2].Shutdown()
	select {
	case err := <-lost:
		t.Errorf("a word after stop (or twice): %v", err)
	case <-time.After(10 * routePoll):
	}
}

// LostRoutePeer reads back the peer of a route's loss from its text, as an
// agent sends it; other faults have none.
func TestLostRoutePeer(t *testing.T) {
	err := &routeLost{host: "h1", peer: "10.213.1.3"}
	if peer, ok := LostRoutePeer(err.Error()); !ok || peer != "10.213.1.3" {
		t.Errorf("LostRoutePeer(%q) = %q, %v", err, peer, ok)
	}
	if _, ok := LostRoutePeer("host h2: no heartbeat from its agent for 3s"); ok {
		t.Error("a heartbeat fault read as a route's loss")
	}
}

// TestAddRoutes: servers that know no other form a mesh once each is given
// the others' route listeners, and keep it.
func TestAddRoutes(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	users, _, err := JobKeys(clusterJob, 2)
	if err != nil {
		t.Fatal(err)
	}
	var srvs []*Server
	for i := range 3 {
		cert, key, err := ca.Issue("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		s, err := Start(&Spec{Name: "gorun-" + strconv.Itoa(i), JobID: clusterJob, Size: 2, Users: users, Cluster: &ClusterSpec{
			Listen: "127.0.0.1", Advertise: "127.0.0.1", CA: ca.CertPEM, Cert: cert, Key: key,
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
	}
	addr := func(s *Server) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.RoutePort())) }
	if got := srvs[1].Unrouted([]string{"gorun-0", "gorun-2"}); len(got) != 2 {
		t.Fatalf("a server with no seeds has routes: it lacks only %v", got)
	}
	if err := srvs[1].AddRoutes([]string{addr(srvs[0])}); err != nil {
		t.Fatal(err)
	}
	if err := srvs[2].AddRoutes([]string{addr(srvs[0]), addr(srvs[1])}); err != nil {
		t.Fatal(err)
	}
	waitMesh(t, srvs, time.Now().Add(10*time.Second))
	for i, s := range srvs {
		var peers []string
		for k := range srvs {
			if k != i {
				peers = append(peers, "gorun-"+strconv.Itoa(k))
			}
		}
		if got := s.Unrouted(peers); len(got) != 0 {
			t.Errorf("server %d lacks %v", i, got)
		}
	}
}

// TestWatchedRedialsQuiet: once WatchRoutes watches a server's routes, its
// log (-v) leaves out its dials of a lost route again, which the watch
// reports; a server nobody watches still prints them. (The servers that
// dial a lost route again are those that dialed it first: the last of five
// to join was dialed by the middle three.)
func TestWatchedRedialsQuiet(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	var mu sync.Mutex
	redials := map[string]int{}
	srvs, _ := startClusterWith(t, n, ca, func(i int, spec *Spec) {
		spec.Verbose = true
		spec.Logf = func(format string, args ...any) {
			if strings.Contains(fmt.Sprintf(format, args...), redial) {
				mu.Lock()
				redials[spec.Name]++
				mu.Unlock()
			}
		}
	}, true)
	last := "gorun-" + strconv.Itoa(n-1)
	var dialers []int // the servers that dialed the last one
	for i, s := range srvs[1 : n-1] {
		rz, _ := s.ns.Routez(nil)
		for _, r := range rz.Routes {
			if r.RemoteName == last && r.DidSolicit {
				dialers = append(dialers, i+1)
			}
		}
	}
	if len(dialers) < 2 {
		t.Fatalf("servers %v dialed %s: want two, one watched and one not", dialers, last)
	}
	watched, unwatched := "gorun-"+strconv.Itoa(dialers[0]), "gorun-"+strconv.Itoa(dialers[1])
	stop := make(chan struct{})
	defer close(stop)
	srvs[dialers[0]].WatchRoutes("h", stop, func(error) {})
	srvs[n-1].Shutdown()
	if !wait.For(10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return redials[unwatched] > 0
	}) {
		t.Fatalf("%s, unwatched, printed no dial of the lost route: the test shows nothing", unwatched)
	}
	time.Sleep(2 * time.Second) // NATS dials again every second
	mu.Lock()
	defer mu.Unlock()
	if k := redials[watched]; k > 0 {
		t.Errorf("%s, watched, printed %d dials of the lost route (%s, unwatched: %d)", watched, k, unwatched, redials[unwatched])
	}
}

// TestRouteSessionsResumed: servers of a job that join its mesh one at a
// time resume, as they dial a newcomer, the TLS session each began with the
// first server (the job's ticket key, one name for all): of 15 routes among
// 6 servers (at addresses of their own), each newcomer's first (to the
// seed) is a full handshake, and the routes the others dial to it are
// resumed. Without the shared ticket key, or the client's session cache,
// or the one name, none is.
func TestRouteSessionsResumed(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var full, resumed int
	count := func(r bool) {
		mu.Lock()
		defer mu.Unlock()
		if r {
			resumed++
		} else {
			full++
		}
	}
	routeHandshake.Store(&count)
	t.Cleanup(func() { routeHandshake.Store(nil) })
	// Each at an address of its own, as hosts are, its certificate for it.
	srvs, _ := startClusterWith(t, 6, ca, func(i int, spec *Spec) {
		ip := "127.0.0." + strconv.Itoa(i+1)
		cert, key, err := ca.Issue(ip)
		if err != nil {
			t.Fatal(err)
		}
		spec.Cluster.Listen, spec.Cluster.Advertise, spec.Cluster.Cert, spec.Cluster.Key = ip, ip, cert, key
	}, true)
	waitMesh(t, srvs, time.Now().Add(10*time.Second))
	mu.Lock()
	defer mu.Unlock()
	// Both ends of a route count its handshake.
	t.Logf("route handshakes (both ends): %d full, %d resumed", full, resumed)
	if resumed == 0 {
		t.Fatalf("no route resumed a session (%d full handshakes)", full)
	}
	if resumed < full {
		t.Errorf("%d handshakes resumed, %d full: want most resumed", resumed, full)
	}
}

// TestWatchRoutesFromTheCall: the watch has the routes as they are when
// WatchRoutes returns: one that closes at once after is a loss (the job's
// ranks start as it returns; a watch whose first look came a routePoll
// later took a route cut meanwhile, and dialed again, as one it never had).
func TestWatchRoutesFromTheCall(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	srvs, _ := startCluster(t, 2, ca)
	waitMesh(t, srvs, time.Now().Add(10*time.Second))
	lost := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	srvs[0].WatchRoutes("h0", stop, func(err error) { lost <- err })
	srvs[1].Shutdown()
	select {
	case err := <-lost:
		t.Logf("%v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no word of the route that closed as the watch began")
	}
}
