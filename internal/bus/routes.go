package bus

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// routePoll is how often a job's server counts its cluster routes, and
// routeScan how often it looks at each (which one closed, or was replaced
// by a new one between two counts): describing 64 routes 20 times a
// second on each of 65 servers took an eighth of a wide job's start on 2
// cores (docs/scale.md), and counting them 20 times a second still woke
// 65 processes 1,300 times a second (their schedulers' wake-ups cost more
// than the count). A route that closes is news within a quarter second.
const (
	routePoll = 250 * time.Millisecond
	routeScan = time.Second
)

// A route between two servers of a job's cluster that closes loses what
// was published while it was down, without a word to any client: NATS
// dials it again, and the ranks at both ends see nothing but a message
// that never comes. mpi promises no loss, so every server of the job
// watches its routes (WatchRoutes), and a route it had that closes (or
// was replaced by a new one between two looks) ends the job, with a
// message naming both hosts.

// routeLost says that the route between two servers of the job closed.
type routeLost struct {
	host string // the host whose server saw it (as gorun names it)
	peer string // the other end: its address
}

func (e *routeLost) Error() string {
	return fmt.Sprintf("the route between the job's NATS servers on host %s and at %s closed while the job ran (messages between them may be lost)", e.host, e.peer)
}

// LostRoutePeer reads, from the text of a route's loss (WatchRoutes's
// error, as gorun has it or as an agent sends it), the address of the
// server at the other end.
func LostRoutePeer(msg string) (peer string, ok bool) {
	_, rest, ok := strings.Cut(msg, " and at ")
	if !ok {
		return "", false
	}
	peer, _, ok = strings.Cut(rest, " closed while the job ran")
	return peer, ok && peer != ""
}

// WatchRoutes calls lost, at most once, when a route this server has had
// to another server of its cluster closes, until stop is closed. Each
// other server is known by its id: its route gone, or another route (a
// new connection id) in its place, is a loss: seen within routePoll where
// the count of routes drops, within routeScan where the route was dialed
// again between two counts. A route that NATS closes as
// a duplicate of one kept is not: the kept one is the one it had. From
// then on, the server's log (with Spec.Verbose) leaves out its attempts to
// dial routes again: a loss is this watch's to report.
//
// It looks at the routes before it returns, and watches them in a
// goroutine of its own: a route cut between the call and a first look
// would be one the watch never had (a job's ranks start as soon as it
// returns, and two ranks can be talking within a routePoll).
func (s *Server) WatchRoutes(host string, stop <-chan struct{}, lost func(error)) {
	s.watched.Store(true)
	w := routeWatch{s: s, host: host, had: map[string]uint64{}, addr: map[string]string{}}
	w.scan()
	go func() {
		t := time.NewTicker(routePoll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if s.ns.NumRoutes() >= len(w.had) && time.Since(w.scanned) < routeScan {
				continue // none gone: each is looked at every routeScan
			}
			if err := w.scan(); err != nil {
				select {
				case <-stop: // the servers are going: no news
				default:
					lost(err)
				}
				return
			}
		}
	}()
}

// routeWatch is WatchRoutes's state: the route it had to each server.
type routeWatch struct {
	s       *Server
	host    string
	had     map[string]uint64 // remote server id -> its route's connection id
	addr    map[string]string // remote server id -> its address, as last seen
	scanned time.Time
}

// scan looks at every route: one it had that is gone, or replaced, is
// the error; the others, and new ones, are what it has from now on.
func (w *routeWatch) scan() error {
	w.scanned = time.Now()
	rz, err := w.s.ns.Routez(&server.RoutezOptions{})
	if err != nil {
		return nil
	}
	now := make(map[string]uint64, len(rz.Routes))
	for _, r := range rz.Routes {
		if _, ok := now[r.RemoteID]; !ok || r.Rid == w.had[r.RemoteID] {
			now[r.RemoteID] = r.Rid
		}
		if r.IP != "" { // none while the route closes: keep the last known
			w.addr[r.RemoteID] = r.IP
		}
	}
	for id, rid := range w.had {
		if now[id] != rid {
			return &routeLost{host: w.host, peer: w.addr[id]}
		}
	}
	for id, rid := range now {
		w.had[id] = rid
	}
	return nil
}

// NumRoutes is how many routes this server has. Fewer than its peers
// says its part of the mesh is not up, and costs a count, where Unrouted
// holds the server's lock while it describes every route: polled by every
// server of a forming mesh, that held up the forming.
func (s *Server) NumRoutes() int { return s.ns.NumRoutes() }

// Unrouted returns the servers of peers (their names, as Spec.Name gives
// them) to which this server has no route yet; none once its part of the
// job's mesh is up.
func (s *Server) Unrouted(peers []string) []string {
	rz, err := s.ns.Routez(&server.RoutezOptions{})
	if err != nil {
		return peers
	}
	have := make(map[string]bool, len(rz.Routes))
	for _, r := range rz.Routes {
		have[r.RemoteName] = true
	}
	var missing []string
	for _, p := range peers {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	return missing
}

// AddRoutes makes this server dial the servers at addrs (host:port of
// their route listeners) as routes of its own, as if its spec had listed
// them in Seeds: it dials each until the route stands. A server that
// gossip did not connect to one of its peers is given that peer so (see
// the launcher's mesh repair).
func (s *Server) AddRoutes(addrs []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := *s.opts
	o.Routes = append([]*url.URL(nil), s.opts.Routes...)
	for _, a := range addrs {
		u, err := url.Parse("nats-route://" + a)
		if err != nil {
			return fmt.Errorf("route %s: %w", a, err)
		}
		o.Routes = append(o.Routes, u)
	}
	if err := s.ns.ReloadOptions(&o); err != nil {
		return fmt.Errorf("adding routes: %w", err)
	}
	s.opts = &o
	return nil
}
