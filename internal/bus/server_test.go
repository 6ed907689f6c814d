package bus

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/subject"
)

// connectAs connects to s with rank's nkey, and collects the errors the
// server reports asynchronously (permission violations).
func connectAs(t *testing.T, url, seed string, errs chan<- error) *nats.Conn {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(url, nats.Nkey(pub, kp.Sign), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// The embedded server listens on loopback only, on a port of its own, admits
// only the job's ranks, each with a key of its own, and takes messages of up
// to 8 MiB.
func TestStartServer(t *testing.T) {
	a, err := StartLocal("", false, "job-a", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := StartLocal("127.0.0.1", false, "job-b", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if a.Port() == b.Port() || a.Creds(0) == b.Creds(0) || a.Creds(0) == a.Creds(1) {
		t.Fatalf("two servers share a port (%d, %d), or two ranks a key", a.Port(), b.Port())
	}
	if addr := a.ns.Addr().(*net.TCPAddr); !addr.IP.IsLoopback() {
		t.Fatalf("listens on %v, want loopback only", addr)
	}
	if a.URL() != "nats://127.0.0.1:"+strconv.Itoa(a.Port()) {
		t.Fatalf("URL %q", a.URL())
	}
	if _, err := nats.Connect(a.URL()); err == nil || !strings.Contains(err.Error(), "Authorization") {
		t.Fatalf("connect without a key: %v, want an authorization error", err)
	}
	kp, _ := nkeys.FromSeed([]byte(b.Creds(0)))
	pub, _ := kp.PublicKey()
	if _, err := nats.Connect(a.URL(), nats.Nkey(pub, kp.Sign)); err == nil || !strings.Contains(err.Error(), "Authorization") {
		t.Fatalf("connect with another job's key: %v, want an authorization error", err)
	}
	nc := connectAs(t, a.URL(), a.Creds(0), make(chan error, 1))
	if nc.MaxPayload() != serverMaxPayload {
		t.Fatalf("max payload %d, want %d", nc.MaxPayload(), serverMaxPayload)
	}
}

// TestSlowRankConnects: a rank that gets no core for longer than NATS's
// authentication timeout between its connection and its CONNECT (an
// oversubscribed host) is still admitted: the server waits
// clientAuthTimeout.
func TestSlowRankConnects(t *testing.T) {
	s, err := StartLocal("", false, "job-slow", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	kp, _ := nkeys.FromSeed([]byte(s.Creds(0)))
	pub, _ := kp.PublicKey()
	stall := server.AUTH_TIMEOUT + time.Second // past NATS's default
	if stall >= clientAuthTimeout {
		t.Fatalf("the stall %v is not within clientAuthTimeout %v", stall, clientAuthTimeout)
	}
	sign := func(nonce []byte) ([]byte, error) {
		time.Sleep(stall)
		return kp.Sign(nonce)
	}
	nc, err := nats.Connect(s.URL(), nats.Nkey(pub, sign), nats.Timeout(clientAuthTimeout))
	if err != nil {
		t.Fatalf("a rank that signed after %v: %v", stall, err)
	}
	nc.Close()
}

// TestRankIdentity (acceptance 3): a process holding rank 1's credentials
// cannot publish as another rank (the server refuses, and the frame reaches
// nobody) nor subscribe to another rank's inbox; as itself it can.
func TestRankIdentity(t *testing.T) {
	const job = "job-id"
	s, err := StartLocal("", false, job, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	victim := connectAs(t, s.URL(), s.Creds(2), make(chan error, 1))
	got, err := victim.SubscribeSync(subject.InboxAll(job, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.Flush(); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	evil := connectAs(t, s.URL(), s.Creds(1), errs)
	wantRefused := func(what string) {
		t.Helper()
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), "Permissions Violation") {
				t.Fatalf("%s: %v, want a permissions violation", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the server did not refuse", what)
		}
	}
	for _, subj := range []string{
		subject.Inbox(job, 2, 0),           // a frame that claims rank 0
		subject.Multicast(job, 0),          // a multicast as rank 0
		subject.Abort(job, 0),              // an Abort as rank 0
		subject.Ready(job, 2),              // rank 2's start-up request
		subject.ReplyPrefix(job, 2) + ".x", // an answer to rank 2's start-up
		"gorun.v1.other-job.p2p.0.1",       // another job
	} {
		if err := evil.Publish(subj, []byte("forged")); err != nil {
			t.Fatal(err)
		}
		wantRefused("publish on " + subj)
	}
	for _, subj := range []string{subject.InboxAll(job, 2), subject.Inbox(job, 2, 0), subject.ReadyAll(job), subject.ReplyPrefix(job, 2) + ".>", "gorun.v1.>", ">"} {
		if _, err := evil.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		if err := evil.Flush(); err != nil {
			t.Fatal(err)
		}
		wantRefused("subscribe to " + subj)
	}
	// As itself, rank 1 reaches rank 2.
	if err := evil.Publish(subject.Inbox(job, 2, 1), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	m, err := got.NextMsg(10 * time.Second)
	if err != nil || m.Subject != subject.Inbox(job, 2, 1) || string(m.Data) != "mine" {
		t.Fatalf("rank 2 got %+v, %v: want only rank 1's own frame", m, err)
	}
	select {
	case err := <-errs:
		t.Fatalf("publishing as itself: %v", err)
	default:
	}
}

// A server for remote ranks listens on every interface; ranks here reach it
// through loopback, others through the address they are given.
func TestStartServerAllInterfaces(t *testing.T) {
	s, err := StartLocal("0.0.0.0", false, "job", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if !strings.HasPrefix(s.URL(), "nats://127.0.0.1:") {
		t.Fatalf("URL %q, want loopback", s.URL())
	}
	if got, want := s.URLFor("10.1.2.3"), "nats://10.1.2.3:"+strconv.Itoa(s.Port()); got != want {
		t.Fatalf("URLFor = %q, want %q", got, want)
	}
	if got, want := s.URLFor("fe80::1"), "nats://[fe80::1]:"+strconv.Itoa(s.Port()); got != want {
		t.Fatalf("URLFor = %q, want %q", got, want)
	}
	connectAs(t, s.URL(), s.Creds(0), make(chan error, 1))
}

// CheckServer fails fast on a closed port, a server that never answers and
// a wrong token, and passes with the right one.
func TestCheckServer(t *testing.T) {
	s := tokenServer(t, "right")
	ctx := context.Background()
	if err := checkServer(ctx, s.ClientURL(), "right", 3*time.Second); err != nil {
		t.Fatalf("right token: %v", err)
	}
	if err := checkServer(ctx, s.ClientURL(), "wrong", 3*time.Second); err == nil {
		t.Fatal("wrong token: no error")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "nats://" + l.Addr().String()
	l.Close()
	start := time.Now()
	if err := checkServer(ctx, closed, "", 3*time.Second); err == nil {
		t.Fatal("closed port: no error")
	}
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	if err := checkServer(ctx, "nats://"+silent.Addr().String(), "", 500*time.Millisecond); err == nil {
		t.Fatal("silent server: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to fail", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := checkServer(cctx, "nats://"+silent.Addr().String(), "", time.Minute); err == nil {
		t.Fatal("cancelled: no error")
	}
}

// tokenServer is a shared server as a site may run one: a token for all.
func tokenServer(t *testing.T, token string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, Authorization: token, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	return s
}

// The server's -v log lines read as gorun's own: "nats: " first, the level
// after it (but for notices), one line per line of the message.
func TestServerLog(t *testing.T) {
	var got []string
	l := serverLog{printf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }, all: true}
	l.Noticef("Server is ready")
	l.Warnf("slow consumer %d\nsecond line\n", 7)
	l.Errorf("100%% wrong: %v", "x")
	want := []string{"nats: Server is ready", "nats: warning: slow consumer 7", "nats: warning: second line", "nats: error: 100% wrong: x"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A rank the server drops for not reading is named, with the server's
// reason, with or without -v: the rank itself sees only a lost connection.
func TestServerLogDropped(t *testing.T) {
	var got []string
	l := serverLog{printf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
	l.Noticef("Server is ready")
	l.Noticef(`127.0.0.1:40112 - cid:7 - "v1.48.0:go:gorun 5f0c rank 3" - "$G/UABC" - Slow Consumer Detected: WriteDeadline of 3m0s exceeded with 2 chunks of 61440 total bytes.`)
	want := []string{"rank 3: its NATS server dropped it: Slow Consumer Detected: WriteDeadline of 3m0s exceeded with 2 chunks of 61440 total bytes."}
	if !slices.Equal(got, want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
}

// stallConn is a connection whose reads block once stalled: a client that
// stopped reading (a process stopped), as its server sees it.
type stallConn struct {
	net.Conn
	stall chan struct{}
}

func (c stallConn) Read(b []byte) (int, error) {
	select {
	case <-c.stall:
		select {} // never reads again; the test's server shutdown ends the process's interest
	default:
		return c.Conn.Read(b)
	}
}

type stallDialer struct{ stall chan struct{} }

func (d stallDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	return stallConn{c, d.stall}, err
}

// TestServerNamesSlowConsumer: a rank that stops reading while more than
// the server's max_pending is sent to it is dropped by the real embedded
// server, and gorun's log of that server names the rank and the reason
// (which the rank itself sees only as a lost connection), without -v.
func TestServerNamesSlowConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 300 MiB through a server; skipped with -short")
	}
	const job, size, stopped = "job-sc", 4, 3
	users, seeds, err := JobKeys(job, size)
	if err != nil {
		t.Fatal(err)
	}
	logged := make(chan string, 100)
	s, err := Start(&Spec{Name: "gorun", JobID: job, Size: size, Users: users, Logf: func(format string, args ...any) {
		logged <- fmt.Sprintf(format, args...)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	kp, _ := nkeys.FromSeed([]byte(seeds[stopped]))
	pub, _ := kp.PublicKey()
	stall := make(chan struct{})
	rc, err := nats.Connect(s.URL(), nats.Nkey(pub, kp.Sign), nats.Name(fmt.Sprintf("gorun %s rank %d", job, stopped)),
		nats.SetCustomDialer(stallDialer{stall}), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Subscribe(subject.InboxAll(job, stopped), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := rc.Flush(); err != nil {
		t.Fatal(err)
	}
	close(stall)
	sender := connectAs(t, s.URL(), seeds[0], make(chan error, 1))
	chunk := make([]byte, serverMaxPayload)
	for sent := 0; sent <= serverMaxPending+64<<20; sent += len(chunk) {
		if err := sender.Publish(subject.Inbox(job, stopped, 0), chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := sender.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case line := <-logged:
		if want := fmt.Sprintf("rank %d: its NATS server dropped it: Slow Consumer Detected: MaxPending of %d Exceeded", stopped, serverMaxPending); line != want {
			t.Fatalf("logged %q, want %q", line, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server logged nothing about the rank it dropped")
	}
}

// TestServerKeys: the embedded server admits only the job's ranks, each
// with a key of its own.
func TestServerKeys(t *testing.T) {
	srv, err := StartLocal("127.0.0.1", false, "example-job", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if nc, err := nats.Connect(srv.URL()); err == nil {
		nc.Close()
		t.Fatal("connected without a key")
	}
	kp, _ := nkeys.FromSeed([]byte(srv.Creds(1)))
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(srv.URL(), nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatalf("with rank 1's key: %v", err)
	}
	nc.Close()
}

// TestCheckServerNothing: checkServer fails when nothing answers at
// the URL.
func TestCheckServerNothing(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	start := time.Now()
	if err := checkServer(context.Background(), url, "", 3*time.Second); err == nil {
		t.Fatal("CheckServer: nil error with nothing at the URL")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("CheckServer took %v, beyond its timeout", took)
	}
}
