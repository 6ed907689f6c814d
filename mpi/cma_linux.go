//go:build linux

package mpi

import (
	"errors"
	"hash/fnv"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// hostIdentity names this machine and PID namespace: two ranks with the same
// identity see each other's process IDs, so one may read the other's memory
// with process_vm_readv. It returns 0 when it cannot tell (and single-copy
// transfers stay off). It is read once a process: Init asks for it twice
// (the engine, the segment's identity), and each read opens two files in
// /proc.
var hostIdentity = sync.OnceValue(readHostIdentity)

func readHostIdentity() uint64 {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return 0
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	h := fnv.New64a()
	h.Write(boot)
	h.Write([]byte(ns))
	return h.Sum64() | 1
}

// readRemote copies len(buf) bytes at addr in process pid into buf, with
// process_vm_readv (one copy, by the kernel).
func readRemote(pid int, addr uint64, buf []byte) error {
	for off := 0; off < len(buf); {
		local := []unix.Iovec{{Base: &buf[off]}}
		local[0].SetLen(len(buf) - off)
		remote := []unix.RemoteIovec{{Base: uintptr(addr) + uintptr(off), Len: len(buf) - off}}
		n, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return errors.New("process_vm_readv read nothing")
		}
		off += n
	}
	return nil
}

// permanentReadError reports whether a failed read means that this process
// can never read the other's memory (not permitted, no such call), as
// opposed to a bad address.
func permanentReadError(err error) bool {
	return !errors.Is(err, unix.EFAULT)
}
