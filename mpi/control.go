package mpi

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/contract"
)

// control is the descriptor on which a rank started by gorun reports
// Init, Close and Abort (contract.Control): a socket to gorun or to its
// host's agent, whose verdict on the rank rests on these reports rather
// than on anything the rank prints, and on which gorun asks for the
// rank's state (what it is blocked in) when it reports a hang. It is taken
// at start-up, closed on exec (a rank's children do not inherit it) and
// its variable removed from the environment (nor do they think they have
// it).
var control struct {
	mu             sync.Mutex
	f              *os.File         // nil: not started by gorun
	sock           bool             // f is a socket, on which gorun asks too (a pipe takes reports only)
	inited, closed bool             // as reported
	pids           map[int]chan int // askPids's questions waiting for gorun's answer, by world rank
	told           map[int]int      // pids gorun gave unasked (its host's ranks, once started), by world rank
}

// maxTold bounds the pids a rank keeps of what gorun told it unasked:
// ranks of one host.
const maxTold = 1 << 16

func init() {
	v, ok := os.LookupEnv(contract.Control)
	if !ok {
		return
	}
	os.Unsetenv(contract.Control)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return
	}
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFIFO: // reports only
		syscall.CloseOnExec(fd)
		control.f = os.NewFile(uintptr(fd), "gorun-control")
	case syscall.S_IFSOCK:
		syscall.CloseOnExec(fd)
		syscall.SetNonblock(fd, true) // a pollable file: the reader below parks no thread
		control.f = os.NewFile(uintptr(fd), "gorun-control")
		control.sock = true
		go serveControl(control.f)
	default:
		// not what gorun gives: write nothing into it
	}
}

// serveControl answers gorun's questions on the control socket: to each
// line "state", a line "state JSON" with this process's blocked.State.
func serveControl(f *os.File) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64), 64)
	for sc.Scan() {
		if r, pid, ok := contract.ParsePidAnswer(sc.Text()); ok {
			control.mu.Lock()
			ch := control.pids[r]
			delete(control.pids, r)
			if ch == nil && pid > 0 && len(control.told) < maxTold {
				if control.told == nil {
					control.told = make(map[int]int)
				}
				control.told[r] = pid
			}
			control.mu.Unlock()
			if ch != nil {
				ch <- pid // buffered: askPids may have given up
			}
			continue
		}
		if sc.Text() == contract.QueryTrace {
			reportTrace(true)
			control.mu.Lock()
			f.Write([]byte(contract.TraceDone + "\n"))
			control.mu.Unlock()
			continue
		}
		if sc.Text() != contract.QueryState {
			continue
		}
		control.mu.Lock()
		st := blocked.Now(control.inited, control.closed)
		control.mu.Unlock()
		b, err := json.Marshal(st)
		for err == nil && len(b) >= contract.MaxStateLine-len(contract.QueryState)-2 && len(st.Calls) > 0 {
			st.Calls, st.More = st.Calls[:len(st.Calls)/2], st.More+len(st.Calls)-len(st.Calls)/2
			b, err = json.Marshal(st)
		}
		if err != nil {
			continue
		}
		control.mu.Lock()
		f.Write(append(append([]byte(contract.QueryState+" "), b...), '\n'))
		control.mu.Unlock()
	}
}

// reportStats gives gorun the rank's statistics (gorun --stats), as a
// line "stats JSON", if gorun started this process.
func reportStats(st blocked.Stats) {
	line := append(st.AppendJSON([]byte(contract.Stats+" ")), '\n')
	if len(line) > contract.MaxStateLine {
		return
	}
	control.mu.Lock()
	defer control.mu.Unlock()
	if control.sock {
		control.f.Write(line)
	}
}

// report tells gorun of event (contract.Report), if gorun started this
// process.
func report(event string, code int) {
	control.mu.Lock()
	defer control.mu.Unlock()
	switch event {
	case contract.ReportInit:
		control.inited = true
	case contract.ReportClose:
		control.closed = true
	}
	if control.f != nil {
		control.f.Write([]byte(contract.Report(event, code) + "\n"))
	}
}

// askPids asks gorun (or its host's agent), on the control socket, which
// process it started as each of ranks (world ranks), and returns the
// answers it got before ctx ended: a pid, or 0 for a rank it did not start
// or that has ended. What gorun told unasked (its host's ranks, once all
// started: launcher's tellPids) needs no question. It returns nil, false
// when this process has no control socket to ask on (it was not started
// by gorun).
func askPids(ctx context.Context, ranks []int) (map[int]int, bool) {
	control.mu.Lock()
	if !control.sock {
		control.mu.Unlock()
		return nil, false
	}
	if control.pids == nil {
		control.pids = make(map[int]chan int)
	}
	got := make(map[int]int, len(ranks))
	waits := make(map[int]chan int, len(ranks))
	var b []byte
	for _, r := range ranks {
		if pid, ok := control.told[r]; ok {
			got[r] = pid
			continue
		}
		ch := make(chan int, 1)
		control.pids[r], waits[r] = ch, ch
		b = append(append(b, contract.PidQuery(r)...), '\n')
	}
	var err error
	if len(b) > 0 {
		_, err = control.f.Write(b)
	}
	control.mu.Unlock()
	for r, ch := range waits {
		if err != nil {
			break
		}
		select {
		case got[r] = <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	control.mu.Lock()
	for r, ch := range waits {
		if control.pids[r] == ch {
			delete(control.pids, r)
		}
	}
	control.mu.Unlock()
	return got, true
}
