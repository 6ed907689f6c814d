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

// TestTellPids: once a host's ranks have started, each is told, unasked, on
// its control socket, the pid of every rank the host started: what mpi's
// Init checks its peers' pids against, with no question (whose answer came
// through a busy gorun) on its way.
func TestTellPids(t *testing.T) {
	h := &hostRanks{running: map[int]int{3: 4242, 5: 4343}, ctl: map[int]*rankControl{}}
	ends := map[int]*bufio.Scanner{}
	for _, r := range []int{3, 5} {
		c, rankEnd, err := newControl()
		if err != nil {
			t.Fatal(err)
		}
		defer rankEnd.Close()
		defer c.f.Close()
		h.ctl[r] = c
		ends[r] = bufio.NewScanner(rankEnd)
	}
	h.tellPids()
	for r, sc := range ends {
		got := map[string]bool{}
		for range 2 {
			if !sc.Scan() {
				t.Fatalf("rank %d was told %v only: %v", r, got, sc.Err())
			}
			got[sc.Text()] = true
		}
		for _, want := range []string{contract.PidAnswer(3, 4242), contract.PidAnswer(5, 4343)} {
			if !got[want] {
				t.Errorf("rank %d was told %v, not %q", r, got, want)
			}
		}
	}
}
