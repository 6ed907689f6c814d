package wait

import (
	"testing"
	"time"
)

// TestFor: a condition that comes true is seen at once, polls stop there,
// and one that never does gives false after the deadline, not before.
func TestFor(t *testing.T) {
	calls := 0
	if !For(time.Minute, func() bool { calls++; return calls == 5 }) || calls != 5 {
		t.Errorf("For: %d calls, want 5", calls)
	}
	start := time.Now()
	if For(100*time.Millisecond, func() bool { return false }) {
		t.Error("For of a condition that never holds: true")
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("For gave up after %v, before its deadline", took)
	}
	late := time.Now().Add(80 * time.Millisecond)
	if !For(80*time.Millisecond, func() bool { return time.Now().After(late) }) {
		t.Error("For missed a condition that holds at its deadline")
	}
}
