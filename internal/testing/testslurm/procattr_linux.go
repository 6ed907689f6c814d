package testslurm

import "syscall"

// daemonProcAttr puts a daemon in a process group of its own, killed with
// the test process even when that dies by SIGKILL.
func daemonProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
