package launcher

import (
	"bufio"
	"testing"

	"github.com/gorun-hpc/gorun/internal/contract"
)

// TestControlAnswersPid: on a rank's control socket, gorun (or an agent)
// answers "which process did you start as world rank R?" from the ranks it
// started (contract.QueryPid), and "-" for a rank it did not start: the
// rank reads another rank's memory only for the pid named here.
func TestControlAnswersPid(t *testing.T) {
	// Not newHostRanks: a job it counts (liveJobs) that never finishes
	// would turn sweep's orphan rule off for the package's later tests.
	h := &hostRanks{running: map[int]int{3: 4242}}
	c, rankEnd, err := newControl()
	if err != nil {
		t.Fatal(err)
	}
	defer rankEnd.Close()
	c.pidOf = h.pidOf
	go c.read()
	defer c.f.Close()
	answers := bufio.NewScanner(rankEnd)
	for _, tc := range []struct {
		rank int
		want string
	}{
		{3, "pid 3 4242"},
		{1, "pid 1 -"},
	} {
		if _, err := rankEnd.Write([]byte(contract.PidQuery(tc.rank) + "\n")); err != nil {
			t.Fatal(err)
		}
		if !answers.Scan() {
			t.Fatalf("no answer about rank %d: %v", tc.rank, answers.Err())
		}
		if got := answers.Text(); got != tc.want {
			t.Errorf("about rank %d: %q, want %q", tc.rank, got, tc.want)
		}
		r, pid, ok := contract.ParsePidAnswer(answers.Text())
		if !ok || r != tc.rank || (pid != 0) != (tc.rank == 3) {
			t.Errorf("ParsePidAnswer(%q) = %d, %d, %v", answers.Text(), r, pid, ok)
		}
	}
	// A reaped rank is no longer vouched for (its pid may be reused).
	h.mu.Lock()
	delete(h.running, 3)
	h.mu.Unlock()
	rankEnd.Write([]byte(contract.PidQuery(3) + "\n"))
	if !answers.Scan() || answers.Text() != "pid 3 -" {
		t.Errorf("about a reaped rank: %q, want %q", answers.Text(), "pid 3 -")
	}
}
