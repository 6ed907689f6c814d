package launcher

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes this process the child subreaper of everything it
// starts: a rank's orphaned descendants (a daemon that double-forked, a
// child that called setsid) become its children instead of init's, so
// sweep finds them and they are reaped here.
func becomeSubreaper() {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// sweep kills every descendant of this process whose environment carries
// job's id (GORUN_JOB_ID, which every rank and what it starts inherit),
// and reaps those that were its children, but for the ones ours says are
// waited for elsewhere (running ranks, whose exec.Cmd reaps them):
// whatever a job's ranks left behind, in any process group or session. It
// repeats while it finds some (a process may fork while it runs), a few
// times at most.
func sweep(job string, ours func(pid int) bool) {
	if job == "" {
		return
	}
	self := os.Getpid()
	want := []byte(EnvJobID + "=" + job + "\x00")
	for range 5 {
		parent := map[int]int{}
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...: comm may hold spaces and parens.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(string(b[i+1:]))
			if len(f) < 2 {
				continue
			}
			ppid, _ := strconv.Atoi(f[1])
			parent[pid] = ppid
		}
		var found []int
		for pid := range parent {
			if pid == self || !descends(parent, pid, self) {
				continue
			}
			env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
				continue
			}
			found = append(found, pid)
		}
		if len(found) == 0 {
			return
		}
		for _, pid := range found {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range found {
			if parent[pid] == self && (ours == nil || !ours(pid)) {
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
			}
		}
	}
}

// descends says whether pid has anc among its ancestors.
func descends(parent map[int]int, pid, anc int) bool {
	for range 64 {
		p, ok := parent[pid]
		if !ok || p <= 1 {
			return false
		}
		if p == anc {
			return true
		}
		pid = p
	}
	return false
}
