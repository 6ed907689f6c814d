package launcher

import (
	"sync"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// The hang report: where every rank is (the call it is blocked in, with
// its arguments and the program's line that made it, or how it ended) and
// what that means together (blocked.Verdict). gorun prints it when
// --timeout fires, before stopping the job; on SIGUSR1, going on; and by
// itself, once, when every rank still running has been blocked in gorun's
// calls, none moving, for Config.HangReport.
//
// Each running rank answers on its control socket (contract.Control,
// relayed by the agents of remote hosts). A report looks twice, lookGap
// apart: a rank whose CPU time or progress count changed in between is
// moving, and no rank that moves is ever part of a deadlock.

// lookGap is the time between a report's two looks.
const lookGap = 300 * time.Millisecond

// hangWatch is what the reports of one job share.
type hangWatch struct {
	r        *runner
	spawners []spawner
	hostOf   []string // rank -> its host's name; nil on one machine

	mu      sync.Mutex
	ended   map[int]rankExit
	busy    bool // a report is being made
	stopped bool
}

// exited records how a rank ended.
func (h *hangWatch) exited(x rankExit) {
	h.mu.Lock()
	h.ended[x.Rank] = x
	h.mu.Unlock()
}

// stop ends the automatic reports: the job is being stopped.
func (h *hangWatch) stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
}

// look asks every host's ranks for their states, all hosts at once.
func (h *hangWatch) look() map[int]*blocked.State {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[int]*blocked.State{}
	for _, sp := range h.spawners {
		wg.Go(func() {
			m := sp.states()
			mu.Lock()
			for r, st := range m {
				out[r] = st
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// ranks is every rank as the report sees it, from two looks d apart.
func (h *hangWatch) ranks(first, second map[int]*blocked.State, d time.Duration) []blocked.Rank {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]blocked.Rank, h.r.cfg.N)
	for i := range out {
		rk := blocked.Rank{Rank: i, State: second[i], Moving: blocked.Moved(first[i], second[i], d)}
		if h.hostOf != nil {
			rk.Host = h.hostOf[i]
		}
		if x, ok := h.ended[i]; ok {
			rk.State, rk.Ended = nil, endedText(x)
		}
		out[i] = rk
	}
	return out
}

// endedText says how a rank ended, for the report.
func endedText(x rankExit) string {
	switch {
	case x.NotStarted:
		return "never started"
	case x.failed() || x.Report.Aborted:
		return x.how()
	case x.Report.Closed:
		return "exited with status 0 after closing its world"
	case !x.Report.Inited:
		return "exited with status 0 without joining the job (no mpi.Init)"
	}
	return x.how()
}

// report looks twice and prints the report, headed by why; it does
// nothing while another report is being made.
func (h *hangWatch) report(why string) {
	h.mu.Lock()
	if h.busy {
		h.mu.Unlock()
		return
	}
	h.busy = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.busy = false
		h.mu.Unlock()
	}()
	first := h.look()
	time.Sleep(lookGap)
	h.print(why, h.ranks(first, h.look(), lookGap))
}

// print prints a report of ranks, headed by why.
func (h *hangWatch) print(why string, ranks []blocked.Rank) {
	lines := []string{why + "; where each rank is:"}
	for _, rk := range ranks {
		for _, l := range blocked.Lines(rk) {
			lines = append(lines, "  "+l)
		}
	}
	lines = append(lines, blocked.Verdict(ranks)...)
	h.r.out.printLines(lines)
}

// watchHangs prints the report once every rank still running has been
// blocked, none moving, for after (polling a few times within it), until
// stop is closed; once more after a rank has moved again.
func (h *hangWatch) watchHangs(after time.Duration, stop <-chan struct{}) {
	every := min(max(after/4, 100*time.Millisecond), 2*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	prev, prevAt := h.look(), time.Now()
	var since time.Time // when the hang was first seen; zero: none
	said := false
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		cur, now := h.look(), time.Now()
		ranks := h.ranks(prev, cur, now.Sub(prevAt))
		prev, prevAt = cur, now
		if !blocked.AllBlocked(ranks) {
			since, said = time.Time{}, false
			continue
		}
		if since.IsZero() {
			since = now
		}
		h.mu.Lock()
		quiet := h.stopped || h.busy
		h.mu.Unlock()
		if !said && !quiet && now.Sub(since) >= after {
			said = true
			h.print("every running rank has been blocked for "+now.Sub(since).Round(time.Second).String()+" (--hang-report)", ranks)
		}
	}
}
