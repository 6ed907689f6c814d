package memnet

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// recorder keeps what an endpoint's handlers were given.
type recorder struct {
	mu     sync.Mutex
	frames map[int][]byte // by sender, the first byte of each frame, in arrival order
	order  []int          // senders, in arrival order
	lost   []int
	closed error
	got    chan struct{}
}

func newRecorder() *recorder {
	return &recorder{frames: map[int][]byte{}, got: make(chan struct{}, 1<<16)}
}

func (r *recorder) handlers() Handlers {
	take := func(src int, f []byte) {
		r.mu.Lock()
		r.frames[src] = append(r.frames[src], f[0])
		r.order = append(r.order, src)
		r.mu.Unlock()
		r.got <- struct{}{}
	}
	return Handlers{
		Inbox:     take,
		Multicast: take,
		Lost: func(src int) {
			r.mu.Lock()
			r.lost = append(r.lost, src)
			r.mu.Unlock()
			r.got <- struct{}{}
		},
		Closed: func(err error) {
			r.mu.Lock()
			r.closed = err
			r.mu.Unlock()
			r.got <- struct{}{}
		},
	}
}

func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("waited 5 s for a frame or an event")
		}
	}
}

// TestOrder sends 3 senders' frames to one receiver with delays and
// reordering: each sender's frames arrive in order, and the senders'
// frames interleave differently from the order sent.
func TestOrder(t *testing.T) {
	const per = 200
	n := New(4, Config{Seed: 1, MaxDelay: 200 * time.Microsecond, Reorder: true})
	rec := newRecorder()
	n.Endpoint(0).Attach(rec.handlers())
	for src := 1; src < 4; src++ {
		for i := range per {
			if err := n.Endpoint(src).Send(0, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec.wait(t, 3*per)
	for src := 1; src < 4; src++ {
		for i, b := range rec.frames[src] {
			if b != byte(i) {
				t.Fatalf("sender %d: frame %d arrived as frame %d", src, b, i)
			}
		}
	}
	switches := 0
	for i := 1; i < len(rec.order); i++ {
		if rec.order[i] != rec.order[i-1] {
			switches++
		}
	}
	if switches < 10 {
		t.Fatalf("senders' frames interleaved only %d times: no reordering across senders", switches)
	}
}

// TestStreams: a multicast frame reaches every rank but its sender, on the
// multicast handler, and may overtake an inbox frame sent before it.
func TestStreams(t *testing.T) {
	n := New(3, Config{})
	var recs [3]*recorder
	for r := range 3 {
		recs[r] = newRecorder()
		n.Endpoint(r).Attach(recs[r].handlers())
	}
	if err := n.Endpoint(0).Send(ToAll, []byte{7}); err != nil {
		t.Fatal(err)
	}
	recs[1].wait(t, 1)
	recs[2].wait(t, 1)
	if len(recs[0].order) != 0 || recs[1].frames[0][0] != 7 || recs[2].frames[0][0] != 7 {
		t.Fatalf("multicast delivered as %v %v %v", recs[0].frames, recs[1].frames, recs[2].frames)
	}
}

// TestCut: a cut rank's frames in flight are lost, its sends fail, its
// Closed is called, and every other rank hears Lost after what it had.
func TestCut(t *testing.T) {
	n := New(3, Config{})
	var recs [3]*recorder
	for r := range 3 {
		recs[r] = newRecorder()
	}
	n.Endpoint(1).Attach(recs[1].handlers())
	n.Endpoint(2).Attach(recs[2].handlers())
	n.Stop(1)
	if err := n.Endpoint(2).Send(1, []byte{1}); err != nil {
		t.Fatal(err)
	}
	n.Cut(2)
	if err := n.Endpoint(2).Send(1, []byte{2}); !errors.Is(err, ErrCut) {
		t.Fatalf("a cut rank's send: %v, want ErrCut", err)
	}
	n.Resume(1)
	recs[1].wait(t, 1)
	recs[2].wait(t, 1)
	if len(recs[1].frames[2]) != 0 || len(recs[1].lost) != 1 || recs[1].lost[0] != 2 {
		t.Fatalf("rank 1 got %v and lost %v; want no frame, then rank 2 lost", recs[1].frames, recs[1].lost)
	}
	if !errors.Is(recs[2].closed, ErrCut) {
		t.Fatalf("the cut rank was closed with %v", recs[2].closed)
	}
}

// TestSlowConsumer: a stopped receiver with more than MaxPending bytes
// waiting is dropped; one with less resumes and gets everything.
func TestSlowConsumer(t *testing.T) {
	const limit = 1000
	n := New(2, Config{MaxPending: limit})
	rec := newRecorder()
	n.Endpoint(1).Attach(rec.handlers())
	n.Stop(1)
	for range limit / 100 {
		if err := n.Endpoint(0).Send(1, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if now, _ := n.Pending(1); now != limit {
		t.Fatalf("%d bytes pending, want %d", now, limit)
	}
	n.Resume(1)
	rec.wait(t, limit/100)
	n.Stop(1)
	for range limit/100 + 1 {
		_ = n.Endpoint(0).Send(1, make([]byte, 100))
	}
	rec.wait(t, 1)
	if !errors.Is(rec.closed, ErrSlowConsumer) {
		t.Fatalf("closed with %v, want ErrSlowConsumer", rec.closed)
	}
}

// TestJoin returns every rank's hello once all have joined, and names the
// ranks missing when ctx ends first.
func TestJoin(t *testing.T) {
	n := New(2, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := n.Endpoint(0).Join(ctx, []byte("a")); err == nil || err.Error() != "ranks [1] never joined: context deadline exceeded" {
		t.Fatalf("join alone: %v", err)
	}
	done := make(chan [][]byte)
	go func() {
		h, _ := n.Endpoint(0).Join(context.Background(), []byte("a"))
		done <- h
	}()
	h, err := n.Endpoint(1).Join(context.Background(), []byte("b"))
	if err != nil || string(h[0]) != "a" || string(h[1]) != "b" || string((<-done)[1]) != "b" {
		t.Fatalf("join: %q %v", h, err)
	}
}

// TestMaxPayload refuses a frame larger than a frame may hold.
func TestMaxPayload(t *testing.T) {
	n := New(2, Config{MaxPayload: 10})
	if err := n.Endpoint(0).Send(1, make([]byte, 11)); err == nil {
		t.Fatal("an 11-byte frame went out; at most 10 may")
	}
}
