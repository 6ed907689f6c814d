package testhosts

import "syscall"

// platform returns "": network namespaces are Linux's, and this is Linux.
func platform() string { return "" }

// sshdProcAttr puts an sshd in a process group of its own, killed with the
// test process even when that dies by SIGKILL.
func sshdProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
