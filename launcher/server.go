package launcher

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
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
// address, on a free port, and admits only clients that present the job's
// secret token.
type Server struct {
	ns    *server.Server
	token string
	host  string
	port  int
}

// StartServer starts an embedded NATS server listening on host ("127.0.0.1"
// when empty; "0.0.0.0" for every interface), on a random free port, with a
// fresh random secret. It returns once the server accepts connections.
// verbose lets the server log to stderr, each line as gorun's own:
// "gorun: nats: Server is ready".
func StartServer(host string, verbose bool) (*Server, error) {
	var printf func(format string, args ...any)
	if verbose {
		printf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "gorun: "+format+"\n", args...)
		}
	}
	return startServer(host, printf)
}

// startServer is StartServer; the server's log lines go to printf (which
// prefixes them "gorun: " and ends them), or nowhere when it is nil.
func startServer(host string, printf func(format string, args ...any)) (*Server, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	token := newSecret()
	opts := &server.Options{
		ServerName:      "gorun",
		Host:            host,
		Port:            server.RANDOM_PORT,
		Authorization:   token,
		NoSigs:          true, // gorun, not the server, handles SIGINT and SIGTERM
		NoLog:           printf == nil,
		NoSystemAccount: true,
		MaxPending:      serverMaxPending,
		WriteDeadline:   serverWriteDeadline,
		MaxPayload:      serverMaxPayload,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	if printf != nil {
		ns.SetLogger(serverLog{printf}, false, false)
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
	return &Server{ns: ns, token: token, host: host, port: port}, nil
}

// serverLog is the embedded server's logger for -v. Each line reads as
// gorun's own, "gorun: nats: ...", and never as the server's default
// "[pid] date [INF] ...", which looks like a rank's line under
// --tag-output ("[3] ..."). Notices are plain, other levels name
// themselves; debug and trace are off.
type serverLog struct {
	printf func(format string, args ...any)
}

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
		l.printf("nats: %s%s", level, line)
	}
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

// Token is the job's secret. Give it to ranks only through their
// environment (GORUN_NATS_TOKEN), never on a command line.
func (s *Server) Token() string { return s.token }

// Shutdown stops the server and closes every connection.
func (s *Server) Shutdown() { s.ns.Shutdown() }

// newSecret returns 256 random bits as text.
func newSecret() string {
	return rand.Text() + rand.Text()
}

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
