package launcher

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/contract"
	"golang.org/x/sys/unix"
)

// becomeSubreaper makes this process the child subreaper of everything it
// starts: a rank's orphaned descendants (a daemon that double-forked, a
// child that called setsid) become its children instead of init's, so
// sweep finds them and they are reaped here.
func becomeSubreaper() {
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// sweep kills the descendants of this process that belong to the job
// s describes, and reaps those that were its children (but for running
// ranks, whose exec.Cmd reaps them): whatever a job's ranks left behind,
// in any process group or session, with or without its environment. A
// descendant is the job's when
//
//   - its environment carries the job's id (GORUN_JOB_ID, which every rank
//     and what it starts inherit unless they clear it);
//   - it descends from one of the job's running ranks (s.running);
//   - or, only while this process runs no other job (s.orphans: always so
//     in gorun and in an agent), it descends from an orphan of this
//     process: a child of this process (the child subreaper, to which a
//     rank's orphans move) that it did not start itself. What it starts
//     itself is never taken for an orphan: a rank, ssh or srun is a process
//     group leader in this process's session (rankProcAttr), a keeper is
//     known by its command line, and anything else started in this
//     process's process group (go build, a test's helper) is in that
//     group; and whatever started before the job's first rank here
//     (s.since) cannot be its orphan. An orphan that made itself such a
//     leader (setpgid, not setsid) is not taken either.
//
// In a test binary that runs several jobs at once, an orphan could be any
// of them: there only its environment tells, and what holds a rank's
// output or control socket is ended with that rank (hostRanks), but an
// orphan that cleared its environment and closed them may be left behind
// (the job that ends last takes it, if that job's ranks started before it).
//
// It repeats while it finds some (a process may fork while it runs), a few
// times at most.
func sweep(s sweepSpec) {
	if onlyKeepers() {
		return // nothing descends from this process but keepers: nothing to end
	}
	self := os.Getpid()
	want := envMarker(s.job)
	read := readProcs
	if s.first > 0 && newerOnly(s.first, s.firstAt) {
		read = func() procTable { return newerProcs(s.first, self) }
	}
	kill(read, func(pid int, t procTable) bool {
		if !descends(t, pid, self) {
			return false
		}
		if want != nil && hasEnv(pid, want) {
			return true
		}
		top := topBelow(t, pid, self) // the child of ours pid descends from
		if s.running != nil && s.running(top) {
			return top != pid // a running rank is its waiter's to end
		}
		return s.orphans && isOrphan(t, top, self, s.since)
	}, func(pid int, t procTable) {
		if t[pid].ppid == self && (s.running == nil || !s.running(pid)) {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	})
}

// onlyKeepers reports whether every child of this process is a keeper
// (from /proc/self/task/*/children, a few reads): then sweep, which ends
// only this process's descendants, and never a keeper (which carries no
// job's id, and starts nothing), has nothing to end, and need not read
// the process table (0.7 ms at the end of a job of 8 ranks on this host,
// on the way to gorun's exit). A rank's orphan, adopted by this process, is a child; so is a
// child that ended and is not reaped yet. It reports false where it
// cannot tell.
func onlyKeepers() bool {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			return false // a thread that ended meanwhile, or no such file
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || !isKeeper(pid) {
				return false
			}
		}
	}
	return true
}

// isOrphan says whether pid, a child of self, is an orphan that moved to
// self (see sweep), started no earlier than since.
func isOrphan(t procTable, pid, self int, since uint64) bool {
	p, me := t[pid], t[self]
	switch {
	case p.ppid != self || p.start < since:
		return false
	case p.pgrp == me.pgrp:
		return false // started here in our own group (go build, a test's helper)
	case p.pgrp == pid && p.sid == me.sid:
		return false // a group leader in our session: a rank, ssh, srun
	}
	return !isKeeper(pid)
}

// topBelow is the ancestor of pid (pid itself maybe) whose parent is anc;
// pid must descend from anc.
func topBelow(t procTable, pid, anc int) int {
	for range 64 {
		p := t[pid].ppid
		if p == anc {
			return pid
		}
		pid = p
	}
	return pid
}

// isKeeper says whether pid is a keeper (of any job).
func isKeeper(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	f := bytes.Split(b, []byte{0})
	// This program as a keeper, or the shell that becomes one (keeper.go).
	return len(f) > 1 && string(f[1]) == keeperArg || len(f) > 3 && string(f[1]) == "-c" && string(f[3]) == keeperArg
}

// sweepOrphans kills every process of this user whose environment carries
// job's id, whoever its parent is now: what the keeper does once the
// job's gorun or agent is gone, and their descendants with it (orphans
// are init's by then, or a subreaper's further up).
func sweepOrphans(job string) {
	want := envMarker(job)
	if want == nil {
		return
	}
	uid := uint32(os.Getuid())
	kill(readProcs, func(pid int, _ procTable) bool {
		fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		return ok && st.Uid == uid && hasEnv(pid, want)
	}, nil)
}

// envMarker is what a process's /proc/PID/environ holds (with a NUL
// before it) when it carries job's id; nil for no job.
func envMarker(job string) []byte {
	if job == "" {
		return nil
	}
	return []byte("\x00" + contract.JobID + "=" + job + "\x00")
}

// hasEnv says whether pid's environment holds want (see envMarker).
func hasEnv(pid int, want []byte) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && bytes.Contains(append([]byte{0}, env...), want)
}

// kill SIGKILLs the live processes, other than this one, that match says
// are to end (of those read lists), then calls reaped on each. It repeats
// while it finds some (a process may fork while it runs), five rounds at
// most.
func kill(read func() procTable, match func(pid int, t procTable) bool, reaped func(pid int, t procTable)) {
	self := os.Getpid()
	for round := range 5 {
		t := read()
		var found []int
		for pid, p := range t {
			if pid == self || p.state == 'Z' && (reaped == nil || p.ppid != self) || !match(pid, t) {
				continue
			}
			found = append(found, pid)
		}
		if len(found) == 0 {
			return
		}
		for _, pid := range found {
			signalIf(pid, syscall.SIGKILL, t[pid].start)
		}
		if reaped != nil {
			for _, pid := range found {
				reaped(pid, t)
			}
		} else {
			// Not our children: give the kernel a moment to end them
			// before the next look.
			time.Sleep(time.Duration(round+1) * 5 * time.Millisecond)
		}
	}
}

// signalIf sends sig to pid if it is still the process that started at
// start (procStat.start; 0: any). A pidfd pins the process while its start
// is checked, so that a pid reused in between is never signalled; where
// pidfds are missing (Linux before 5.3) the check and the kill are apart.
func signalIf(pid int, sig syscall.Signal, start uint64) bool {
	same := func() bool {
		p, ok := readStat(pid)
		return ok && (start == 0 || p.start == start)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if !errors.Is(err, unix.ENOSYS) || !same() {
			return false
		}
		return syscall.Kill(pid, sig) == nil
	}
	defer unix.Close(fd)
	return same() && unix.PidfdSendSignal(fd, sig, nil, 0) == nil
}

// procStat is what /proc/PID/stat says of a process that sweep and the
// keeper use.
type procStat struct {
	state           byte
	ppid, pgrp, sid int
	start           uint64 // clock ticks after boot: with the pid, one process
}

// procTable is every process in /proc, by pid.
type procTable map[int]procStat

// readProcs reads every process's /proc/PID/stat: one small read each
// (about 15 us of CPU a process on this project's 2-core machines, busy).
func readProcs() procTable { return newerProcs(0, 0) }

// A process started after the job's first rank has a larger pid than that
// rank's, unless the pids wrapped around in between (the kernel hands them
// out in turn, up to pid_max): so where they have not, what a job's sweep
// looks for (the job's processes, all started after its first rank) is
// among the larger pids, and the sweep need not read the others' stat
// (about 1.8 ms of CPU of a launch of 8 ranks, at the end of the job, when
// it read every process's). The pids have not wrapped if the last one
// handed out is not below first and the job is younger than a whole round
// of pids could take (pidRound: millions of forks).
const pidRound = 10 * time.Second

// newerOnly says whether every process started since first (at firstAt)
// has a larger pid than first (see pidRound).
func newerOnly(first int, firstAt time.Time) bool {
	if time.Since(firstAt) >= pidRound {
		return false
	}
	b, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
	if err != nil {
		return false
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && last >= first
}

// newerProcs reads the stat of the processes whose pid is at least first,
// and of self.
func newerProcs(first, self int) procTable {
	t := procTable{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return t
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid < first && pid != self {
			continue
		}
		if p, ok := readStat(pid); ok {
			t[pid] = p
		}
	}
	return t
}

// readStat reads one process's /proc/PID/stat.
func readStat(pid int) (procStat, bool) {
	// open, read, close: os.ReadFile's fstat and growing buffer cost a
	// keeper's poll a third more.
	fd, err := syscall.Open("/proc/"+strconv.Itoa(pid)+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return procStat{}, false
	}
	var buf [1024]byte
	n, err := syscall.Read(fd, buf[:])
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return procStat{}, false
	}
	b := buf[:n]
	// pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice num_threads
	// itrealvalue starttime ...: comm may hold spaces and parens.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) == 0 {
		return procStat{}, false
	}
	var p procStat
	p.state = f[0][0]
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgrp, _ = strconv.Atoi(f[2])
	p.sid, _ = strconv.Atoi(f[3])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

// descends says whether pid has anc among its ancestors.
func descends(t procTable, pid, anc int) bool {
	for range 64 {
		p, ok := t[pid]
		switch {
		case !ok:
			return false
		case p.ppid == anc:
			return true
		case p.ppid <= 1:
			return false
		}
		pid = p.ppid
	}
	return false
}

// startOf is when pid started (procStat.start), 0 if it is gone.
func startOf(pid int) uint64 {
	p, _ := readStat(pid)
	return p.start
}

// holders lists the live processes other than this one that have one of
// inodes (pipes' or sockets') open: whatever a rank left holding its
// output or control socket. It reads every process's descriptors: it is
// for the rare rank whose streams stay open after it ended.
func holders(inodes []uint64) []int {
	if len(inodes) == 0 {
		return nil
	}
	want := make(map[string]bool)
	for _, ino := range inodes {
		s := strconv.FormatUint(ino, 10)
		want["pipe:["+s+"]"], want["socket:["+s+"]"] = true, true
	}
	self := os.Getpid()
	var found []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := "/proc/" + e.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + fd.Name()); err == nil && want[l] {
				found = append(found, pid)
				break
			}
		}
	}
	return found
}

// killHolders SIGKILLs the processes that hold one of inodes (a rank's
// streams) open, and reaps those that are this process's children (a
// rank's orphans, moved to this subreaper) but for running ranks.
func killHolders(inodes []uint64, running func(pid int) bool) {
	self := os.Getpid()
	for _, pid := range holders(inodes) {
		p, ok := readStat(pid)
		if !ok || !signalIf(pid, syscall.SIGKILL, p.start) {
			continue
		}
		if p.ppid == self && !running(pid) {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	}
}

// inode is f's inode number (a pipe's or socket's), 0 if unknown.
func inode(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// keeperSupported says whether a keeper can do its work here: with /proc.
const keeperSupported = true
