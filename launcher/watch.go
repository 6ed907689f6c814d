package launcher

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/contract"
)

// watcher watches a job's ranks until every one has ended: it stops the
// job at its first failure, on a signal, at the timeout or when the job's
// ctx is done, and finds the job's result.
type watcher struct {
	r        *runner
	ctx      context.Context
	spawners []spawner
	hw       *hangWatch

	reason  *ExitError // why the job is being stopped; nil while it runs
	first   *rankExit  // the rank whose failure ended the job
	ended   map[int]rankExit
	running int
	// A failure that followed a peer's leave: the job's end waits (at
	// most blameGrace, on blameC) for that peer's own end (see blame).
	suspect *rankExit
	blameC  <-chan time.Time
	// Cleared once the job is being stopped: nothing more to wait for.
	timeoutC <-chan time.Time
	ctxDone  <-chan struct{}
	graceC   <-chan time.Time
	// --on-failure continue: the ranks that died while the job went on,
	// and how the others are told of one.
	dead []rankExit
	died func(rank int)
}

// watch waits until every rank has ended, stopping the job at its first
// failure, on a signal, at the timeout or when ctx is done; it returns the
// job's result.
func (r *runner) watch(ctx context.Context, spawners []spawner, exits <-chan rankExit, sigCh, usr1 <-chan os.Signal, hw *hangWatch, died func(rank int)) error {
	cfg := &r.cfg
	if cfg.HangReport > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go hw.watchHangs(cfg.HangReport, stop)
	}
	w := &watcher{r: r, ctx: ctx, spawners: spawners, hw: hw, ended: make(map[int]rankExit), running: cfg.N, ctxDone: ctx.Done(), died: died}
	if cfg.Timeout > 0 {
		t := time.NewTimer(cfg.Timeout)
		defer t.Stop()
		w.timeoutC = t.C
	}
	for w.running > 0 {
		select {
		case x := <-exits:
			w.exited(x)
		case <-w.blameC:
			w.blameC = nil
			if w.reason == nil {
				root, _ := blame(*w.suspect, w.ended, cfg.N)
				w.failed(root)
			}
		case s := <-sigCh:
			w.signaled(s.(syscall.Signal))
		case <-w.ctxDone:
			w.beginStop(stopped(context.Cause(ctx), "; every rank stopped"))
		case <-usr1:
			go hw.report("got SIGUSR1 (the job goes on)", true)
		case <-w.timeoutC:
			hw.report(fmt.Sprintf("the job ran for %v (--timeout)", cfg.Timeout), false)
			w.beginStop(&ExitError{Code: ExitTimeout, Msg: fmt.Sprintf("job timed out after %v (--timeout); every rank stopped", cfg.Timeout)})
		case <-w.graceC:
			w.graceC = nil
			r.logf("grace of %v over: SIGKILL to %d ranks", cfg.StopGrace, w.running)
			w.stopAll(true)
		}
	}
	return w.result()
}

func (w *watcher) stopAll(kill bool) {
	for _, sp := range w.spawners {
		sp.stop(kill)
	}
}

// beginStop stops every rank, SIGKILL after the grace, for why.
func (w *watcher) beginStop(why *ExitError) {
	cfg := &w.r.cfg
	if w.reason != nil {
		return
	}
	w.reason = why
	w.hw.stop()
	w.timeoutC, w.ctxDone = nil, nil
	if cfg.Trace != "" && w.running > 0 {
		// The ranks about to be stopped give their traces first, with
		// the calls they are blocked in.
		var wg sync.WaitGroup
		for _, sp := range w.spawners {
			wg.Go(sp.dumpTraces)
		}
		wg.Wait()
	}
	if w.running > 0 {
		w.r.logf("stopping %d ranks: SIGTERM, SIGKILL after %v", w.running, cfg.StopGrace)
	}
	w.stopAll(false)
	w.graceC = time.NewTimer(cfg.StopGrace).C
}

// failed starts the job's end with the failure of root.
func (w *watcher) failed(root rankExit) {
	w.first = &root
	w.suspect, w.blameC = nil, nil
	w.beginStop(&ExitError{Code: root.exitCode()})
}

// exited takes the end of a rank.
func (w *watcher) exited(x rankExit) {
	cfg := &w.r.cfg
	w.running--
	if w.running > 0 && x.Code == 0 && x.Signal == 0 && x.Err == nil && x.Report.Inited && !x.Report.Closed && !x.Report.Aborted {
		// In MPI a rank that leaves while others may still need it fails
		// the job: they would wait for it forever.
		x.Unclosed = true
	}
	w.ended[x.Rank] = x
	w.hw.exited(x)
	if x.NotStarted {
		return
	}
	if cfg.Verbose && w.reason == nil {
		w.r.logf("%v", x)
	}
	if w.reason != nil || w.goesOn(x) {
		return
	}
	if w.suspect == nil && x.failed() {
		w.suspect = &x
		w.blameC = time.After(blameGrace)
	}
	if w.suspect != nil {
		if root, wait := blame(*w.suspect, w.ended, cfg.N); wait < 0 {
			w.failed(root)
		} else {
			w.r.logf("%s failed after rank %d left the job: waiting up to %v for rank %d's own end", w.suspect.who(), wait, blameGrace, wait)
		}
	}
}

// goesOn takes, under --on-failure continue, the failure of x, a rank
// other than 0: gorun names it, the others are told, and the job goes on.
func (w *watcher) goesOn(x rankExit) bool {
	if w.r.cfg.OnFailure != OnFailureContinue || x.Rank == 0 || !x.failed() {
		return false
	}
	w.dead = append(w.dead, x)
	w.r.out.printf("%v; the job goes on without it (--on-failure continue)", x)
	if w.running > 0 && w.died != nil {
		w.died(x.Rank)
	}
	return true
}

// signaled takes SIGINT or SIGTERM: the first stops the job, the next
// kills every rank.
func (w *watcher) signaled(s syscall.Signal) {
	if w.reason == nil {
		w.r.logf("got %v: stopping the job (again to kill it at once)", signalName(s))
		w.beginStop(stopped(signalCause{s}, "; every rank stopped"))
		return
	}
	w.r.logf("got %v again: killing every rank", signalName(s))
	w.stopAll(true)
}

// result is the job's result once every rank has ended.
func (w *watcher) result() error {
	if w.reason == nil && w.suspect != nil {
		root, _ := blame(*w.suspect, w.ended, w.r.cfg.N)
		w.first, w.reason = &root, &ExitError{Code: root.exitCode()}
	}
	if w.reason == nil {
		w.sayDead()
		return nil
	}
	if w.first == nil {
		return w.reason
	}
	// A rank failed. Name the rank that called Abort if one did (the others
	// then exit too, maybe before it), as it reported (never as its output
	// says), else the first failure.
	var aborter *rankExit
	for _, x := range w.ended {
		if x.Report.Aborted && (aborter == nil || x.Rank < aborter.Rank) {
			aborter = &x
		}
	}
	if aborter != nil {
		code := aborter.Report.AbortCode
		status := contract.AbortStatus(code)
		msg := fmt.Sprintf("%s aborted the job with code %d", aborter.who(), code)
		if status != code {
			msg += fmt.Sprintf(" (exit status %d: a code outside 1-255 exits 1)", status)
		}
		return &ExitError{Code: status, Msg: msg}
	}
	first, out := w.first, w.r.out
	out.waitRank(first.Rank, outputDrain)
	first.Panicked = out.panicked(first.Rank)
	msg := first.String()
	if words := out.lastWords(first.Rank); words != "" {
		msg += ": " + words
	}
	return &ExitError{Code: first.exitCode(), Msg: msg, Err: first.Err}
}

// sayDead lists, at the end of a job that went on, the ranks that died.
func (w *watcher) sayDead() {
	if len(w.dead) == 0 {
		return
	}
	var ranks []string
	for _, x := range w.dead {
		ranks = append(ranks, strconv.Itoa(x.Rank))
	}
	w.r.out.printf("the job went on without %d of %d ranks (--on-failure continue), which died: %s", len(w.dead), w.r.cfg.N, strings.Join(ranks, ", "))
}

// blameGrace is how long a failure that followed a peer's leave waits for
// that peer's own end before gorun names the failure.
const blameGrace = 2 * time.Second

// blame finds the rank whose failure started the job's end, from x, a rank
// that failed, and the ranks ended so far. A rank that saw a peer leave
// (its Report.Lost, which mpi reports on the control socket as soon as it
// knows, so before the rank can fail because of it) failed as a bystander
// when that peer failed too: a panic or an error on rank k runs k's
// deferred Close, whose bye fails the peers blocked on k, and they may
// well exit before k has printed its panic. So blame follows the first
// lost peer of each rank while that peer failed; a peer that left
// cleanly (exit status 0) leaves the blame where it is. It returns the
// rank to name, and wait >= 0 when the answer depends on rank wait, which
// left but has not ended yet (the caller waits blameGrace at most for
// it), else -1. n is the job's size.
func blame(x rankExit, ended map[int]rankExit, n int) (root rankExit, wait int) {
	seen := map[int]bool{x.Rank: true}
	for {
		if len(x.Report.Lost) == 0 {
			return x, -1
		}
		p := x.Report.Lost[0]
		if seen[p] || p < 0 || p >= n {
			return x, -1
		}
		seen[p] = true
		e, ok := ended[p]
		switch {
		case !ok:
			return x, p
		case e.NotStarted || !e.failed():
			return x, -1
		}
		x = e
	}
}
