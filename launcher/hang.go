package launcher

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/trace"
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
	r         *runner
	spawners  []spawner
	hostOf    []string // rank -> its host's name; nil on one machine
	spawnerOf []int    // rank -> the index of its spawner

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
// nothing while another report is being made, nor, unless always, when no
// rank has joined the job (a program that does not use mpi, or ranks
// still starting).
func (h *hangWatch) report(why string, always bool) {
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
	ranks := h.ranks(first, h.look(), lookGap)
	joined := slices.ContainsFunc(ranks, func(r blocked.Rank) bool {
		return r.State != nil && (r.State.Inited || len(r.State.Calls) > 0)
	})
	if always || joined {
		h.print(why, ranks)
	}
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

// printStats prints every rank's statistics (Config.Stats): one row of
// messages and bytes per rank, then each rank's calls and the time they
// were blocked.
func (h *hangWatch) printStats() {
	h.mu.Lock()
	defer h.mu.Unlock()
	lines := []string{"statistics (--stats):",
		fmt.Sprintf("  %6s %12s %14s %12s %14s %12s", "rank", "sent msgs", "sent bytes", "recv msgs", "recv bytes", "largest")}
	var calls, paths []string
	for i := range h.r.cfg.N {
		x, ok := h.ended[i]
		var st blocked.Stats
		if !ok || x.Report.Stats == nil || json.Unmarshal(x.Report.Stats, &st) != nil {
			calls = append(calls, fmt.Sprintf("  rank %d: no statistics (it did not close its world)", i))
			continue
		}
		lines = append(lines, fmt.Sprintf("  %6d %12d %14d %12d %14d %12d", i, st.SentMsgs, st.SentBytes, st.RecvMsgs, st.RecvBytes, st.Largest))
		paths = append(paths, fmt.Sprintf("  rank %d sent by path: bus %d frames %d bytes, shared memory %d frames %d bytes; copied out of other ranks' memory: %d bytes",
			i, st.BusFrames, st.BusBytes, st.RingFrames, st.RingBytes, st.CopyBytes))
		var ops []string
		for _, o := range st.Ops {
			ops = append(ops, fmt.Sprintf("%s %d (blocked %v)", o.Op, o.Calls, o.Blocked.Round(time.Microsecond)))
		}
		if len(ops) == 0 {
			ops = []string{"none"}
		}
		calls = append(calls, fmt.Sprintf("  rank %d calls: %s", i, strings.Join(ops, ", ")))
	}
	h.r.out.printLines(append(append(lines, paths...), calls...))
}

// writeTrace writes every rank's trace (Config.Trace) to f, on gorun's
// clock from t0.
func (h *hangWatch) writeTrace(f io.Writer, t0 time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ranks := make([]trace.RankTrace, h.r.cfg.N)
	here, _ := os.Hostname()
	for i := range ranks {
		rt := &ranks[i]
		host := here
		if h.hostOf != nil {
			host = h.hostOf[i]
		}
		rt.Rank, rt.Name = i, fmt.Sprintf("rank %d on %s", i, host)
		if k := h.spawnerOf[i]; k >= 0 {
			rt.Offset = -h.spawners[k].clock()
		}
		x, ok := h.ended[i]
		switch {
		case !ok || x.NotStarted:
			rt.Missing = "never started"
			continue
		case len(x.Report.Trace) == 0:
			rt.Missing = "gave no trace: it neither closed its world nor answered when the job was stopped"
			continue
		case x.Report.TraceCut:
			rt.Missing = fmt.Sprintf("its trace passed %d MiB: the rest was left out", maxTraceBytes>>20)
		}
		for _, b := range x.Report.Trace {
			var ch trace.Chunk
			if json.Unmarshal(b, &ch) != nil {
				continue
			}
			rt.Dropped = ch.Dropped
			rt.Events = append(rt.Events, ch.Events...)
		}
	}
	return trace.Write(f, ranks, t0.UnixNano())
}
