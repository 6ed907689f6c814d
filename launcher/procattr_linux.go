package launcher

import "syscall"

// rankProcAttr puts a rank in a process group of its own, so that a signal
// to the group reaches everything the rank started and the terminal's
// Ctrl-C reaches gorun only; Pdeathsig kills the rank if gorun dies, even by
// SIGKILL.
func rankProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
