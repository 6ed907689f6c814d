package bus

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Limits of the embedded NATS server.
const (
	// serverMaxPending is how much may wait for one slow reader before the
	// server drops it (the default is 64 MiB).
	serverMaxPending = 256 << 20
	// serverWriteDeadline is how long the server waits on a blocked write
	// to a rank before it drops the rank (the default is 10 s). A rank
	// that does not read is a rank that is stopped (a debugger, SIGSTOP, a
	// suspended VM, a long pause), never one flooded: what can wait for
	// it is bounded by the eager credit and the rendezvous window it
	// grants (mpi's EagerBudget and RendezvousWindow, about 100 MiB at
	// most), under serverMaxPending. So the deadline only bounds how long
	// a rank may stop: 3 minutes, before the server's pings (every 2
	// minutes, 2 unanswered) would drop it anyway.
	serverWriteDeadline = 3 * time.Minute
	// serverMaxPayload is the largest message the server takes, and so
	// the size of mpi's chunks: 8 MiB, the most the server takes without
	// warning (the default is 1 MiB). Fewer, larger chunks mean fewer
	// copies into a reassembly buffer: an 8 MiB Bcast to 8 ranks took 36 ms
	// instead of 46 on 2 cores.
	serverMaxPayload = 8 << 20
	// serverReadyTimeout bounds the wait for the listener.
	serverReadyTimeout = 5 * time.Second
	// routeConnectRetries is how often a server dials again, a second
	// apart, a route that gossip told it of and that failed (see
	// serverOptions).
	routeConnectRetries = 10

	// routeTLSTimeout bounds a route's TLS handshake. NATS's 5 s made
	// 64 servers forming their mesh on 2 cores collapse: thousands of
	// handshakes at once each took longer than that, were dropped, and
	// were dialed again (a fifth of the machine's time went to redials,
	// and no mesh in a minute). A handshake left to finish is work done
	// once; a stuck one is still ended by the job's mesh timeout.
	routeTLSTimeout = time.Minute
	// clientAuthTimeout is how long a rank may take from its connection to
	// its signed CONNECT. NATS's 2 s dropped ranks of oversubscribed jobs
	// (and goroutine ranks of parallel tests) whose process got no core
	// for that long ("Authentication Timeout" at Init); only job's ranks
	// reach the server, and a rank's own Init bound (mpi's Timeout) ends
	// one that never authenticates.
	clientAuthTimeout = time.Minute
)

// Server is a NATS server embedded in gorun for one job: it listens on one
// address, on a free port, and admits only the job's ranks, each with an
// nkey of its own that lets it publish only as itself (see Creds).
type Server struct {
	ns        *server.Server
	seeds     []string // each rank's nkey seed, by rank; nil on an agent's server
	host      string
	port      int
	routePort int // 0 without a cluster
	mu        sync.Mutex
	opts      *server.Options // what it runs with (AddRoutes reloads them)
	watched   *atomic.Bool    // WatchRoutes runs: see serverLog
}

// StartLocal starts an embedded NATS server for job (its id) of size
// ranks, listening on host ("127.0.0.1" when empty; "0.0.0.0" for every
// interface), on a random free port, with a fresh nkey for every rank (see
// Creds). It returns once the server accepts connections. verbose lets the
// server log to stderr, each line as gorun's own: "gorun: nats: Server is
// ready".
func StartLocal(host string, verbose bool, job string, size int) (*Server, error) {
	users, seeds, err := JobKeys(job, size)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	s, err := Start(&Spec{Name: "gorun", Host: host, JobID: job, Size: size, Users: users, Verbose: verbose})
	if err != nil {
		return nil, err
	}
	s.seeds = seeds
	return s, nil
}

// Spec is everything one host's embedded server of a job is made
// from. gorun makes one for every host of the job, and sends each remote
// host's to its agent over the agent's ssh channel (it holds the
// host's private key); serverOptions turns it into the
// server's options, the same way on every host. So a job-wide setting (the
// authorization, jobAuthorization) applies to every server of the cluster
// unchanged.
type Spec struct {
	Name    string // unique in the job's cluster
	Host    string // the client listener: "127.0.0.1" (default) for ranks of this host only
	JobID   string
	Size    int
	Users   []string // each rank's nkey (public keys only), by rank: jobAuthorization
	Verbose bool
	// Logf, with Verbose, takes the server's log lines (prefixing them
	// "gorun: "); nil: stderr. Not sent to agents.
	Logf    func(format string, args ...any) `json:"-"`
	Cluster *ClusterSpec                     // nil: a server alone (a job on one machine)
	// InProcess: the server listens nowhere; clients reach it through
	// nats.InProcessServer(s) only (mpitest's jobs in one process). Not
	// with Cluster.
	InProcess bool `json:"-"`
	// MaxPayload, when above 0, replaces serverMaxPayload: mpitest's 1 MiB
	// makes its jobs cut messages into chunks at a size tests reach cheaply.
	MaxPayload int32 `json:"-"`
}

// ClusterSpec makes a server one of the job's cluster: it listens for
// routes on a port of Ports, says it is at Advertise, dials Seeds, and
// speaks TLS with the job's certificates on every route (both ends show a
// certificate of the job's CA, and ask for one).
type ClusterSpec struct {
	Listen    string   // route listener address: "0.0.0.0" (default) or one address
	Ports     [2]int   // the route port range, inclusive; {0, 0}: any free port
	Advertise string   // this host as the other servers reach it (an address or name)
	Seeds     []string // host:port of servers to dial (the launcher's)
	// Peers names every other server of the cluster (their Spec.Name):
	// the mesh is up, for this server, once it has a route to each
	// (Server.Unrouted).
	Peers     []string
	CA        []byte // the job CA's certificate (PEM)
	Cert, Key []byte // this server's certificate and key (PEM)
	TicketKey []byte // the job's TLS session ticket key (CA.TicketKey); none: no resumption
}

// clusterName names every job cluster (servers of one job find each other
// only through its seeds, and prove they are of the job by its CA).
const clusterName = "gorun"

// serverOptions builds the options of a job's server from spec: the one
// place where they are made, for gorun's own server and every agent's.
// port is the route port to use when spec has a cluster (-1: any free).
func serverOptions(spec *Spec, routePort int) (*server.Options, error) {
	host := spec.Host
	if host == "" {
		host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName:      spec.Name,
		Host:            host,
		Port:            server.RANDOM_PORT,
		NoSigs:          true, // gorun, not the server, handles SIGINT and SIGTERM
		NoLog:           !spec.Verbose,
		NoSystemAccount: true,
		MaxPending:      serverMaxPending,
		WriteDeadline:   serverWriteDeadline,
		MaxPayload:      serverMaxPayload,
		DontListen:      spec.InProcess,
		AuthTimeout:     clientAuthTimeout.Seconds(),
	}
	if spec.MaxPayload > 0 {
		opts.MaxPayload = spec.MaxPayload
	}
	if err := jobAuthorization(spec, opts); err != nil {
		return nil, err
	}
	if c := spec.Cluster; c != nil {
		tc, err := routeTLS(c.CA, c.Cert, c.Key, c.TicketKey)
		if err != nil {
			return nil, err
		}
		listen := c.Listen
		if listen == "" {
			listen = "0.0.0.0"
		}
		opts.Cluster = server.ClusterOpts{
			Name:        clusterName,
			Host:        listen,
			Port:        routePort,
			TLSConfig:   tc,
			TLSTimeout:  routeTLSTimeout.Seconds(),
			PoolSize:    -1, // one route per pair of servers: route interest arrives in the order given (see mpi's Init)
			Compression: server.CompressionOpts{Mode: server.CompressionOff},
			// An implicit route (one that gossip told it of) that fails is
			// dialed again, routeConnectRetries times a second apart: NATS's
			// default gives up after the first try, and a job's mesh then
			// lacks that pair for good (64 servers starting at once left one
			// pair unrouted after 60 s).
			ConnectRetries: routeConnectRetries,
		}
		// A host without a port: the server adds the port it listens on.
		opts.Cluster.Advertise = c.Advertise
		for _, seed := range c.Seeds {
			u, err := url.Parse("nats-route://" + seed)
			if err != nil {
				return nil, fmt.Errorf("route %s: %w", seed, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	return opts, nil
}

// Start starts a job's server from spec and returns once it accepts
// connections (and, with a cluster, listens for routes on a port of the
// range).
func Start(spec *Spec) (*Server, error) {
	ports := []int{server.RANDOM_PORT}
	if c := spec.Cluster; c != nil && c.Ports[0] > 0 {
		ports = ports[:0]
		for p := c.Ports[0]; p <= c.Ports[1]; p++ {
			ports = append(ports, p)
		}
	}
	var lastErr error
	for _, rp := range ports {
		if spec.Cluster != nil && rp > 0 {
			// The server says nothing when its route port is taken: try it first.
			l, err := net.Listen("tcp", net.JoinHostPort(cmpOr(spec.Cluster.Listen, "0.0.0.0"), strconv.Itoa(rp)))
			if err != nil {
				lastErr = err
				continue
			}
			l.Close()
		}
		s, err := startOne(spec, rp)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	if spec.Cluster != nil && spec.Cluster.Ports[0] > 0 {
		return nil, fmt.Errorf("embedded NATS server: no free route port in %d-%d: %v", spec.Cluster.Ports[0], spec.Cluster.Ports[1], lastErr)
	}
	return nil, lastErr
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func startOne(spec *Spec, routePort int) (*Server, error) {
	opts, err := serverOptions(spec, routePort)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	host := opts.Host
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	logf := spec.Logf
	if logf == nil {
		logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "gorun: "+format+"\n", args...) }
	}
	// Without -v the log still says why the server dropped a rank.
	watched := new(atomic.Bool)
	ns.SetLogger(serverLog{printf: logf, all: spec.Verbose, watched: watched}, false, false)
	// Start returns once the client listener is bound; ReadyForConnections
	// then succeeds at its first check, without the 25 ms sleep it takes
	// after `go ns.Start()`.
	ns.Start()
	if !ns.ReadyForConnections(serverReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s: not ready after %v", host, serverReadyTimeout)
	}
	port := 0
	if a, ok := ns.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	s := &Server{ns: ns, host: host, port: port, opts: opts, watched: watched}
	if spec.Cluster != nil {
		a := ns.ClusterAddr()
		if a == nil {
			ns.Shutdown()
			return nil, fmt.Errorf("embedded NATS server: cannot listen for routes on port %d", routePort)
		}
		s.routePort = a.Port
	}
	return s, nil
}

// serverLog is the embedded server's logger for -v. Each line reads as
// gorun's own, "gorun: nats: ...", and never as the server's default
// "[pid] date [INF] ...", which looks like a rank's line under
// --tag-output ("[3] ..."). Notices are plain, other levels name
// themselves; debug and trace are off.
type serverLog struct {
	printf func(format string, args ...any)
	all    bool // -v: every line; else only a dropped rank's (see dropped)
	// watched is set once WatchRoutes watches the server's routes: a
	// route's loss is then its to report, and the server's own dials of
	// it again (which at a job's end go on until every server has
	// stopped) are not printed.
	watched *atomic.Bool
}

// redial is how the server's log says it dialed a route and failed.
const redial = "Error trying to connect to route"

func (l serverLog) Noticef(format string, v ...any) { l.log("", format, v) }
func (l serverLog) Warnf(format string, v ...any)   { l.log("warning: ", format, v) }
func (l serverLog) Errorf(format string, v ...any)  { l.log("error: ", format, v) }
func (l serverLog) Fatalf(format string, v ...any)  { l.log("fatal: ", format, v) }
func (l serverLog) Debugf(format string, v ...any)  { l.log("debug: ", format, v) }
func (l serverLog) Tracef(format string, v ...any)  { l.log("trace: ", format, v) }

// log prints the message one line at a time, each prefixed "nats: " and
// the level.
func (l serverLog) log(level, format string, v []any) {
	msg := strings.TrimRight(fmt.Sprintf(format, v...), "\n")
	for line := range strings.SplitSeq(msg, "\n") {
		if rank, why, ok := dropped(line); ok {
			l.printf("rank %s: its NATS server dropped it: %s", rank, why)
		} else if l.all && !(l.watched != nil && l.watched.Load() && strings.Contains(line, redial)) {
			l.printf("nats: %s%s", level, line)
		}
	}
}

// slowConsumer finds, in a server's log line, the rank it dropped as a
// slow consumer (its client name ends "rank N", see mpi) and why: the
// write deadline passed, or too much waited for it (max_pending).
var slowConsumer = regexp.MustCompile(`rank (\d+)" - .*(Slow Consumer .*)$`)

// dropped reports the rank and the reason of a log line about a rank the
// server dropped, which the rank itself only sees as a lost connection.
func dropped(line string) (rank, why string, ok bool) {
	m := slowConsumer.FindStringSubmatch(line)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// URL is the address ranks on this machine connect to, as
// "nats://host:port" (127.0.0.1 when the server listens on every
// interface).
func (s *Server) URL() string {
	host := s.host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return s.URLFor(host)
}

// URLFor is the server's address as seen through host, for ranks on other
// machines: "nats://host:port".
func (s *Server) URLFor(host string) string {
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(s.port))
}

// RoutePort is the port the server listens on for its cluster's routes (0
// when it has none).
func (s *Server) RoutePort() int { return s.routePort }

// Port is the port the server listens on.
func (s *Server) Port() int { return s.port }

// Creds is rank's secret: the seed of its nkey, which lets it publish only
// as itself. Give it to that rank only, through its environment
// (GORUN_NATS_CREDS), never on a command line.
func (s *Server) Creds(rank int) string { return s.seeds[rank] }

// InProcessConn is a client connection to the server through memory,
// for nats.InProcessServer: how mpitest's ranks reach a server that
// listens nowhere (Spec.InProcess).
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }

// Shutdown stops the server and closes every connection.
func (s *Server) Shutdown() { s.ns.Shutdown() }

// checkServer connects to an existing NATS server (a comma-separated list
// of URLs for a cluster), with token if not empty, and returns an error if
// none answers within timeout. gorun calls it for --nats, so that a wrong
// URL fails at once instead of in every rank.
func checkServer(ctx context.Context, urls, token string, timeout time.Duration) error {
	var auth []nats.Option
	if token != "" {
		auth = append(auth, nats.Token(token))
	}
	return CheckExternal(ctx, urls, timeout, auth)
}
