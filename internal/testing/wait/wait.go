// Package wait is how tests wait for a state that comes by itself (a
// process gone, a file removed, a count reached, a line written): they poll
// it with a deadline, never sleep a fixed time and hope.
//
//	if !wait.For(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
//		t.Errorf("%d goroutines left", runtime.NumGoroutine())
//	}
package wait

import "time"

// maxPoll is the longest pause between two calls of a condition.
const maxPoll = 50 * time.Millisecond

// For calls cond at once, then again after pauses that grow from a
// millisecond to maxPoll, until it returns true or d has passed. It reports
// whether cond held; cond's last call comes after the deadline, so a state
// reached just in time counts.
func For(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(min(pause, max(time.Until(deadline), 0)+time.Millisecond))
		pause = min(2*pause, maxPoll)
	}
	return true
}
