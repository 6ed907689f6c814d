//go:build unix && !linux

package testslurm

import "syscall"

// daemonProcAttr puts a daemon in a process group of its own. (New never
// gets as far as starting one off Linux: the hosts are network namespaces.)
func daemonProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
