package launcher

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The embedded server listens on loopback only, on a port of its own, wants
// the job's token, and takes messages of up to 8 MiB.
func TestStartServer(t *testing.T) {
	a, err := StartServer("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := StartServer("127.0.0.1", false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if a.Port() == b.Port() || a.Token() == b.Token() || len(a.Token()) < 43 {
		t.Fatalf("two servers share a port (%d, %d) or a secret, or it is short (%d chars)", a.Port(), b.Port(), len(a.Token()))
	}
	if addr := a.ns.Addr().(*net.TCPAddr); !addr.IP.IsLoopback() {
		t.Fatalf("listens on %v, want loopback only", addr)
	}
	if a.URL() != "nats://127.0.0.1:"+strconv.Itoa(a.Port()) {
		t.Fatalf("URL %q", a.URL())
	}
	if _, err := nats.Connect(a.URL(), nats.Token(b.Token())); err == nil || !strings.Contains(err.Error(), "Authorization") {
		t.Fatalf("connect with another job's token: %v, want an authorization error", err)
	}
	nc, err := nats.Connect(a.URL(), nats.Token(a.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if nc.MaxPayload() != serverMaxPayload {
		t.Fatalf("max payload %d, want %d", nc.MaxPayload(), serverMaxPayload)
	}
}

// A server for remote ranks listens on every interface; ranks here reach it
// through loopback, others through the address they are given.
func TestStartServerAllInterfaces(t *testing.T) {
	s, err := StartServer("0.0.0.0", false)
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
	nc, err := nats.Connect(s.URL(), nats.Token(s.Token()))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// CheckServer fails fast on a closed port, a server that never answers and
// a wrong token, and passes with the right one.
func TestCheckServer(t *testing.T) {
	s, err := StartServer("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	ctx := context.Background()
	if err := CheckServer(ctx, s.URL(), s.Token(), 3*time.Second); err != nil {
		t.Fatalf("right token: %v", err)
	}
	if err := CheckServer(ctx, s.URL(), "wrong", 3*time.Second); err == nil {
		t.Fatal("wrong token: no error")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "nats://" + l.Addr().String()
	l.Close()
	start := time.Now()
	if err := CheckServer(ctx, closed, "", 3*time.Second); err == nil {
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
	if err := CheckServer(ctx, "nats://"+silent.Addr().String(), "", 500*time.Millisecond); err == nil {
		t.Fatal("silent server: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to fail", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := CheckServer(cctx, "nats://"+silent.Addr().String(), "", time.Minute); err == nil {
		t.Fatal("cancelled: no error")
	}
}

// The server's -v log lines read as gorun's own: "nats: " first, the level
// after it (but for notices), one line per line of the message.
func TestServerLog(t *testing.T) {
	var got []string
	l := serverLog{func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
	l.Noticef("Server is ready")
	l.Warnf("slow consumer %d\nsecond line\n", 7)
	l.Errorf("100%% wrong: %v", "x")
	want := []string{"nats: Server is ready", "nats: warning: slow consumer 7", "nats: warning: second line", "nats: error: 100% wrong: x"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
