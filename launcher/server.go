package launcher

import (
	"context"
	"fmt"
	"net"
	"strconv"
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
	// to a rank before it drops the rank (the default is 10 s on recent
	// servers, 2 s on older ones).
	serverWriteDeadline = 10 * time.Second
	// serverMaxPayload is the largest message the server takes, and so
	// the size of mpi's chunks: 8 MiB, the most the server takes without
	// warning (the default is 1 MiB). Fewer, larger chunks mean fewer
	// copies into a reassembly buffer: an 8 MiB Bcast to 8 ranks took 36 ms
	// instead of 46 on 2 cores.
	serverMaxPayload = 8 << 20
	// serverReadyTimeout bounds the wait for the listener.
	serverReadyTimeout = 5 * time.Second
)

// Server is a NATS server embedded in gorun for one job: it listens on one
// address, on a free port, and admits only the job's ranks, each with an
// nkey of its own that lets it publish only as itself (see Creds).
type Server struct {
	ns    *server.Server
	seeds []string
	host  string
	port  int
}

// StartServer starts an embedded NATS server for job (its id) of size
// ranks, listening on host ("127.0.0.1" when empty; "0.0.0.0" for every
// interface), on a random free port, with a fresh nkey for every rank. It
// returns once the server accepts connections. verbose lets the server log
// to stderr.
func StartServer(host string, verbose bool, job string, size int) (*Server, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	if size < 1 {
		return nil, fmt.Errorf("embedded NATS server: a job of %d ranks", size)
	}
	users, seeds, err := jobAuthorization(job, size)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	opts := &server.Options{
		ServerName:      "gorun",
		Host:            host,
		Port:            server.RANDOM_PORT,
		Nkeys:           users,
		NoSigs:          true, // gorun, not the server, handles SIGINT and SIGTERM
		NoLog:           !verbose,
		NoSystemAccount: true,
		MaxPending:      serverMaxPending,
		WriteDeadline:   serverWriteDeadline,
		MaxPayload:      serverMaxPayload,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	if verbose {
		ns.ConfigureLogger()
	}
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
	return &Server{ns: ns, seeds: seeds, host: host, port: port}, nil
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

// Port is the port the server listens on.
func (s *Server) Port() int { return s.port }

// Creds is rank's secret: the seed of its nkey, which lets it publish only
// as itself. Give it to that rank only, through its environment
// (GORUN_NATS_CREDS), never on a command line.
func (s *Server) Creds(rank int) string { return s.seeds[rank] }

// Shutdown stops the server and closes every connection.
func (s *Server) Shutdown() { s.ns.Shutdown() }

// CheckServer connects to an existing NATS server (a comma-separated list
// of URLs for a cluster), with token if not empty, and returns an error if
// none answers within timeout. gorun calls it for --nats, so that a wrong
// URL fails at once instead of in every rank.
func CheckServer(ctx context.Context, urls, token string, timeout time.Duration) error {
	opts := []nats.Option{
		nats.Name("gorun"),
		nats.Timeout(timeout),
		nats.NoReconnect(),
		nats.RetryOnFailedConnect(false),
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(urls, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		err := r.nc.FlushTimeout(timeout)
		r.nc.Close()
		return err
	case <-ctx.Done():
		go func() { // close the connection if it comes after all
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return context.Cause(ctx)
	}
}
