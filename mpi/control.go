package mpi

import (
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/gorun-hpc/gorun/internal/contract"
)

// control is the descriptor on which a rank started by gorun reports
// Init, Close and Abort (contract.Control): a pipe to gorun or to its
// host's agent, whose verdict on the rank rests on these reports rather
// than on anything the rank prints. It is taken at start-up, closed on
// exec (a rank's children do not inherit it) and its variable removed
// from the environment (nor do they think they have it).
var control struct {
	mu sync.Mutex
	f  *os.File // nil: not started by gorun
}

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
	if syscall.Fstat(fd, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return // not the pipe gorun gave: write nothing into it
	}
	syscall.CloseOnExec(fd)
	control.f = os.NewFile(uintptr(fd), "gorun-control")
}

// report tells gorun of event (contract.Report), if gorun started this
// process.
func report(event string, code int) {
	control.mu.Lock()
	defer control.mu.Unlock()
	if control.f != nil {
		control.f.Write([]byte(contract.Report(event, code) + "\n"))
	}
}
