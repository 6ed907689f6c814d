// Package contract is the launch contract between gorun and its ranks, in
// one place: the environment variables gorun sets for every rank, which
// package mpi reads. Both the launcher and mpi import it; it imports only
// the standard library, so the launcher links nothing of mpi.
package contract

import (
	"strconv"
	"strings"
)

// The environment of every rank.
const (
	Rank      = "GORUN_RANK"       // the rank, 0 to Size-1
	Size      = "GORUN_SIZE"       // the job's ranks
	LocalRank = "GORUN_LOCAL_RANK" // among the ranks of one host
	LocalSize = "GORUN_LOCAL_SIZE" // the ranks of that host
	JobID     = "GORUN_JOB_ID"     // the job's id: a token of every subject
	NATSURL   = "GORUN_NATS_URL"   // the bus, as the rank reaches it
	NATSToken = "GORUN_NATS_TOKEN" // a shared server's token: only ever in an environment
	NATSCreds = "GORUN_NATS_CREDS" // the rank's own credentials: only ever in its environment
	NATSCA    = "GORUN_NATS_CA"    // a PEM file: the CA of a --nats server's certificate
	NATSCert  = "GORUN_NATS_CERT"  // a PEM file: the client certificate for a --nats server
	NATSKey   = "GORUN_NATS_KEY"   // a PEM file: that certificate's key
)

// Env is every variable of the contract that a rank may find in its
// environment.
var Env = []string{Rank, Size, LocalRank, LocalSize, JobID, NATSURL, NATSToken, NATSCreds, NATSCA, NATSCert, NATSKey, Control, Trace, SharedMemory}

// Prefix starts every variable of the contract: a user may not set one
// with -x.
const Prefix = "GORUN_"

// Control names the file descriptor (one end of a Unix socket pair, "3")
// on which a rank reports to gorun, or its host's agent, what its exit
// status cannot say: one line per event, in Report's format. gorun's
// verdict on a rank (did it join, did it close, did it abort and with what
// code) comes from these lines, never from what the rank prints. gorun
// asks on it too: to a line QueryState the rank answers with a line
// "state" and its blocked.State as JSON, at most MaxStateLine bytes.
const Control = "GORUN_CONTROL_FD"

// QueryState asks a rank for its state, and starts the answer's line.
const QueryState = "state"

// Stats starts the line, "stats JSON", with a rank's blocked.Stats that
// it writes on its control descriptor when it closes its world.
const Stats = "stats"

// Trace, when set, turns a rank's tracing on (gorun --trace): its value
// is how many events the rank keeps (the last ones). The rank gives them
// when it closes its world, in lines "trace JSON" (TraceLine).
const Trace = "GORUN_TRACE"

// SharedMemory, when set, is the path of the shared-memory segment that
// the launcher (gorun, or the host's agent) made for the ranks of this
// host (internal/shm): a rank opens it as its local rank (LocalRank)
// and talks to the ranks of its host that opened it too through it, not
// through the bus. Unset: every frame goes through the bus (gorun
// --shm=false, or a host where no segment could be made).
const SharedMemory = "GORUN_SHM"

// TraceLine starts a line of a rank's trace on its control descriptor.
const TraceLine = "trace"

// QueryTrace asks a rank for its trace so far (gorun is stopping the
// job): it answers with its trace lines, then a line TraceDone.
const (
	QueryTrace = "trace"
	TraceDone  = "traced"
)

// MaxStateLine bounds a state or stats line on the control descriptor.
const MaxStateLine = 64 << 10

// The events a rank reports on its control descriptor.
const (
	ReportInit  = "init"  // Init returned its world
	ReportClose = "close" // the world was closed
	ReportAbort = "abort" // Abort was called, with the code that follows
	ReportLost  = "lost"  // the world rank that follows left the job (its bye, or its loss) while this one ran
)

// Report is the line for an event: "init", "close", "abort CODE" with
// the code Abort was given (any int: the exit status is another matter,
// see AbortStatus), or "lost RANK" with the world rank of a peer this rank
// saw leave. gorun's verdict uses the lost lines to tell a rank that
// failed because a peer left (a bystander) from the rank that started the
// job's end.
func Report(event string, code int) string {
	if event == ReportAbort || event == ReportLost {
		return event + " " + strconv.Itoa(code)
	}
	return event
}

// ParseReport reads a line that Report made (without its newline).
func ParseReport(line string) (event string, code int, ok bool) {
	switch {
	case line == ReportInit || line == ReportClose:
		return line, 0, true
	case strings.HasPrefix(line, ReportAbort+" "):
		c, err := strconv.Atoi(line[len(ReportAbort)+1:])
		if err != nil {
			return "", 0, false
		}
		return ReportAbort, c, true
	case strings.HasPrefix(line, ReportLost+" "):
		r, err := strconv.Atoi(line[len(ReportLost)+1:])
		if err != nil || r < 0 {
			return "", 0, false
		}
		return ReportLost, r, true
	}
	return "", 0, false
}

// AbortStatus is the exit status of a rank, and of gorun, for a job
// aborted with code: code itself when it is 1 to 255; anything else (0,
// negative, 256 and above, which an exit status, one byte, cannot carry or
// would carry as 0) is 1, so an aborted job never looks successful.
func AbortStatus(code int) int {
	if code < 1 || code > 255 {
		return 1
	}
	return code
}

// QueryPid starts a rank's question to gorun (or its host's agent) on its
// control descriptor, "pid RANK": which process did you start as world
// rank RANK? The answer is a line "pid RANK PID", or "pid RANK -" when it
// did not start that rank or the rank has ended (a rank of another host,
// or no rank at all). A rank copies a large message straight out of
// another's memory (process_vm_readv) only when the process the sender
// announced at start-up is the one the launcher names: a rank with its own
// genuine key that announced another process's pid is refused, and its
// messages go through the bus.
const QueryPid = "pid"

// PidQuery is the line that asks for the process of world rank rank.
func PidQuery(rank int) string { return QueryPid + " " + strconv.Itoa(rank) }

// ParsePidQuery reads a line that PidQuery made (without its newline).
func ParsePidQuery(line string) (rank int, ok bool) {
	s, ok := strings.CutPrefix(line, QueryPid+" ")
	if !ok {
		return 0, false
	}
	r, err := strconv.Atoi(s)
	if err != nil || r < 0 {
		return 0, false
	}
	return r, true
}

// PidAnswer is the answer to PidQuery(rank): pid, or "-" for a pid of 0
// or less (no such rank started here, or it has ended).
func PidAnswer(rank, pid int) string {
	p := "-"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	return QueryPid + " " + strconv.Itoa(rank) + " " + p
}

// ParsePidAnswer reads a line that PidAnswer made (without its newline):
// the rank asked about, and its pid, 0 for "-".
func ParsePidAnswer(line string) (rank, pid int, ok bool) {
	s, ok := strings.CutPrefix(line, QueryPid+" ")
	if !ok {
		return 0, 0, false
	}
	rs, ps, ok := strings.Cut(s, " ")
	if !ok {
		return 0, 0, false
	}
	r, err := strconv.Atoi(rs)
	if err != nil || r < 0 {
		return 0, 0, false
	}
	if ps == "-" {
		return r, 0, true
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p <= 0 {
		return 0, 0, false
	}
	return r, p, true
}
