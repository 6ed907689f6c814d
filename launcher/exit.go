package launcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/gorun-hpc/gorun/internal/contract"
)

// Exit codes of gorun besides a failed rank's own code.
const (
	// ExitOK: every rank exited 0.
	ExitOK = 0
	// ExitFailure: gorun itself could not run the job (missing program,
	// build error, NATS server unreachable, a rank that could not start).
	ExitFailure = 1
	// ExitUsage: bad command line (unknown flag, bad value).
	ExitUsage = 2
	// ExitTimeout: the job ran longer than --timeout, as timeout(1) does.
	ExitTimeout = 124
	// ExitSignalBase plus a signal's number: a rank was killed by that
	// signal, or gorun was stopped by it (130 for SIGINT, 143 for SIGTERM).
	ExitSignalBase = 128
)

// ExitError is the error Run returns when the job did not succeed. Code is
// the exit status gorun exits with: a failed rank's own code, 128+signal,
// ExitTimeout, or ExitFailure.
type ExitError struct {
	Code int
	Msg  string // one line, without a "gorun: " prefix
	Err  error  // the cause, if any
}

func (e *ExitError) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the exit status for an error Run returned: 0 for nil, the
// Code of an *ExitError, and ExitFailure for any other error.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailure
}

// rankExit is how one rank ended, as a spawner reports it.
type rankExit struct {
	Rank int
	Host string // host name, for messages
	Pid  int    // 0 if unknown

	// Code is the exit status (0..255); Signal is set instead when the
	// rank was killed by a signal.
	Code   int
	Signal syscall.Signal

	// Err is set when the rank could not be started or waited for.
	Err error

	// NotStarted is set for a rank the spawner gave up on before starting
	// it (the job was being stopped).
	NotStarted bool

	// Panicked is set when the rank printed a Go panic before exiting.
	Panicked bool

	// What the rank reported on its control descriptor (contract.Control),
	// as mpi does: that Init returned, that it closed its world, that it
	// called Abort (and with what code). Never taken from its output.
	Report rankReport

	// Unclosed is set by gorun for a rank that exited 0 after Init without
	// closing its world while other ranks still ran: a failure.
	Unclosed bool
}

// rankReport is what a rank reported of itself (see contract.Report).
type rankReport struct {
	Inited, Closed, Aborted bool
	AbortCode               int               // the code given to Abort (any int)
	Lost                    []int             `json:",omitempty"` // world ranks it saw leave, first first (at most maxLost)
	Stats                   json.RawMessage   `json:",omitempty"` // blocked.Stats, sent when it closed
	Trace                   []json.RawMessage `json:",omitempty"` // trace.Chunks, sent when it closed (--trace)
	TraceCut                bool              `json:",omitempty"` // chunks were left out: more than maxTraceBytes
}

// add records one report line; it ignores lines that are not reports.
func (r *rankReport) add(line string) {
	event, code, ok := contract.ParseReport(line)
	if !ok {
		return
	}
	switch event {
	case contract.ReportInit:
		r.Inited = true
	case contract.ReportClose:
		r.Closed = true
	case contract.ReportAbort:
		if !r.Aborted {
			r.Aborted, r.AbortCode = true, code
		}
	case contract.ReportLost:
		if len(r.Lost) < maxLost && !slices.Contains(r.Lost, code) {
			r.Lost = append(r.Lost, code)
		}
	}
}

// maxLost bounds the lost peers kept of a rank's reports: the verdict
// needs the first one only.
const maxLost = 4

// failed says whether the rank ended in a way that fails the job.
func (x rankExit) failed() bool {
	return !x.NotStarted && (x.Err != nil || x.Signal != 0 || x.Code != 0 || x.Unclosed)
}

// exitCode is the code gorun exits with for this rank's failure.
func (x rankExit) exitCode() int {
	switch {
	case x.Signal != 0:
		return ExitSignalBase + int(x.Signal)
	case x.Err != nil && x.Code == 0, x.Unclosed:
		return ExitFailure
	}
	return x.Code
}

// String describes the rank and how it ended, as in "rank 3 (pid 1234 on
// host x) exited with status 7".
func (x rankExit) String() string { return x.who() + " " + x.how() }

// how says how the rank ended, as in "exited with status 7".
func (x rankExit) how() string {
	var how string
	switch {
	case x.Err != nil:
		how = x.Err.Error()
	case x.Signal != 0:
		how = fmt.Sprintf("was killed by signal %d (%s)", int(x.Signal), signalName(x.Signal))
	case x.Unclosed:
		how = "exited with status 0 after mpi.Init without closing its world (Comm.Close) while other ranks still ran"
	default:
		how = fmt.Sprintf("exited with status %d", x.Code)
	}
	if x.Panicked {
		how += " after a panic"
	}
	return how
}

// who names the rank, as in "rank 3 (pid 1234 on host x)".
func (x rankExit) who() string {
	s := fmt.Sprintf("rank %d (", x.Rank)
	if x.Pid > 0 {
		s += fmt.Sprintf("pid %d ", x.Pid)
	}
	return s + "on host " + x.Host + ")"
}

// signalName is the SIGxxx name of common signals, else the C library's
// description.
func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGILL:
		return "SIGILL"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGBUS:
		return "SIGBUS"
	case syscall.SIGFPE:
		return "SIGFPE"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}
