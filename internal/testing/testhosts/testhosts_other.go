//go:build unix && !linux

package testhosts

import "syscall"

// platform says why there are no test hosts here: they are Linux network
// namespaces (ip netns), so Require skips every multi-host test.
func platform() string { return "needs Linux (network namespaces, ip netns)" }

// sshdProcAttr puts an sshd in a process group of its own. (New never gets
// as far as starting one off Linux.)
func sshdProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
