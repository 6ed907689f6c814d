package contract

import "testing"

// TestPidLines: the pid question and its answers read back as written, and
// malformed lines are refused.
func TestPidLines(t *testing.T) {
	if r, ok := ParsePidQuery(PidQuery(7)); !ok || r != 7 {
		t.Errorf("ParsePidQuery(PidQuery(7)) = %d, %v", r, ok)
	}
	for _, tc := range []struct{ rank, pid, want int }{{7, 1234, 1234}, {0, 0, 0}, {2, -5, 0}} {
		r, pid, ok := ParsePidAnswer(PidAnswer(tc.rank, tc.pid))
		if !ok || r != tc.rank || pid != tc.want {
			t.Errorf("ParsePidAnswer(PidAnswer(%d, %d)) = %d, %d, %v", tc.rank, tc.pid, r, pid, ok)
		}
	}
	for _, bad := range []string{"pid", "pid x", "pid -1", "pids 3", "state"} {
		if _, ok := ParsePidQuery(bad); ok {
			t.Errorf("ParsePidQuery(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"pid 3", "pid 3 x", "pid 3 0", "pid -1 5", "pid 3 -5", "state 3 4"} {
		if _, _, ok := ParsePidAnswer(bad); ok {
			t.Errorf("ParsePidAnswer(%q) accepted", bad)
		}
	}
}
