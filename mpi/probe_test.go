package mpi

import (
	"context"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/subject"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestProbeNacked: a probe of a rank whose subscription the server does
// not know comes back at once (the server's no-responders status), and is
// sent again a few milliseconds later, until the rank subscribes: the
// prober reaches it long before its unanswered probes would go again (the
// test makes that wait an hour). Without the probe's reply subject, or
// without sending a nacked probe again, the probe never reaches the rank.
func TestProbeNacked(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	connect := func() *nats.Conn {
		nc, err := nats.Connect(s.ClientURL(), nats.NoEcho())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	const job = "probe"
	tr := &natsTransport{e: newEngine(Options{Timeout: time.Minute}), rank: 0, size: 2, job: job, nc: connect()}
	p, err := tr.newProbes()
	if err != nil {
		t.Fatal(err)
	}
	p.quiet = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tr.probeReach(ctx, p) }()

	// Rank 1 subscribes once its first probe has come back unheard.
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		n := p.nacks
		p.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no probe came back unheard")
		}
		time.Sleep(time.Millisecond)
	}
	rank1 := connect()
	if _, err := rank1.Subscribe(subject.ReachAll(job, 1), func(m *nats.Msg) {
		_ = rank1.Publish(subject.Reached(job, 0, 1), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("probeReach: %v", err)
	}
}
