package launcher

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	self := os.Getpid()
	kill(job, func(pid int, parent map[int]int) bool { return descends(parent, pid, self) }, func(pid int, parent map[int]int) {
		if parent[pid] == self && (ours == nil || !ours(pid)) {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	})
}

// sweepOrphans kills every process of this user whose environment carries
// job's id, whoever its parent is now: what the keeper does once the
// job's gorun or agent is gone, and their descendants with it (orphans
// are init's by then, or a subreaper's further up).
func sweepOrphans(job string) {
	uid := uint32(os.Getuid())
	kill(job, func(pid int, _ map[int]int) bool {
		fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		return ok && st.Uid == uid
	}, nil)
}

// kill SIGKILLs the processes, other than this one, that in says to
// consider and whose environment carries job's id, then calls reaped on
// each. It repeats while it finds some (a process may fork while it runs),
// five rounds at most.
func kill(job string, in func(pid int, parent map[int]int) bool, reaped func(pid int, parent map[int]int)) {
	if job == "" {
		return
	}
	self := os.Getpid()
	want := []byte("\x00" + EnvJobID + "=" + job + "\x00")
	for round := range 5 {
		parent := procParents()
		var found []int
		for pid := range parent {
			if pid == self || !in(pid, parent) {
				continue
			}
			env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil || !bytes.Contains(append([]byte{0}, env...), want) {
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
		if reaped != nil {
			for _, pid := range found {
				reaped(pid, parent)
			}
		} else {
			// Not our children: give the kernel a moment to end them
			// before the next look.
			time.Sleep(time.Duration(round+1) * 5 * time.Millisecond)
		}
	}
}

// procParents maps every process in /proc to its parent.
func procParents() map[int]int {
	parent := map[int]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return parent
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
	return parent
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

// keeperSupported says whether a keeper can do its work here: with /proc.
const keeperSupported = true
