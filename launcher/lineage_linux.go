package launcher

import (
	"os"
	"sync"
)

// lineage is a keeper's record of its parent's process tree: every
// descendant's pid and start time.
type lineage struct {
	parent int
	mu     sync.Mutex
	seen   map[int]uint64 // pid -> start
}

func newLineage(parent int) *lineage { return &lineage{parent: parent, seen: map[int]uint64{}} }

// record adds the parent's descendants now to the record, and drops those
// that ended; not once the parent is gone (this process is no longer its
// child then), when its orphans have moved elsewhere.
func (l *lineage) record() {
	if os.Getppid() != l.parent {
		return
	}
	t := readProcs()
	if os.Getppid() != l.parent {
		return // it died while this one read: the last record stands
	}
	self := os.Getpid()
	l.mu.Lock()
	defer l.mu.Unlock()
	for pid, start := range l.seen {
		if p, ok := t[pid]; !ok || p.start != start || p.state == 'Z' {
			delete(l.seen, pid)
		}
	}
	for pid, p := range t {
		if pid != self && p.state != 'Z' && descends(t, pid, l.parent) {
			l.seen[pid] = p.start
		}
	}
}

// kill kills what the record holds that still runs with the same start
// time, and what descends from it now, but for keepers.
func (l *lineage) kill() {
	l.mu.Lock()
	seen := l.seen
	l.mu.Unlock()
	if len(seen) == 0 {
		return
	}
	kill(readProcs, func(pid int, t procTable) bool {
		q := pid
		for range 64 {
			if q <= 1 {
				return false
			}
			if start, ok := seen[q]; ok && t[q].start == start {
				return !isKeeper(pid)
			}
			p, ok := t[q]
			if !ok {
				return false
			}
			q = p.ppid
		}
		return false
	}, nil)
}
