package launcher

import (
	"testing"
	"time"
)

// TestAgentHeartbeatWatch: a reader's silence counts only while it reads.
// Busy handing a frame on for many timeouts, it is never lost; reading
// again, it is lost once the timeout passes with no byte.
func TestAgentHeartbeatWatch(t *testing.T) {
	const timeout = 20 * time.Millisecond
	l := newLiveness()
	lost := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	l.handling()
	go l.watch(always(timeout), stop, func() { close(lost) })
	for range 10 {
		select {
		case <-lost:
			t.Fatal("lost while the reader was busy handing a frame on")
		case <-time.After(timeout): // timeouts pass, not a wait for a state
		}
	}
	l.reading()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatalf("not lost 10s after the last byte (timeout %v)", timeout)
	}
	if s := l.silent(time.Now()); s < timeout {
		t.Errorf("lost after %v of silence, want %v at least", s, timeout)
	}
}

// always is a limit that does not change.
func always(d time.Duration) func() time.Duration { return func() time.Duration { return d } }
