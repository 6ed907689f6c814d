//go:build unix && !linux

package launcher

import "syscall"

// rankProcAttr puts a rank in a process group of its own, so that a signal
// to the group reaches everything the rank started and the terminal's
// Ctrl-C reaches gorun only. (Without Linux's Pdeathsig, ranks outlive a
// gorun killed by SIGKILL.)
func rankProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
