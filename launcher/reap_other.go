//go:build !linux

package launcher

import "os"

// becomeSubreaper does nothing: child subreapers are Linux's.
func becomeSubreaper() {}

// sweep does nothing without Linux's /proc: a rank's descendants that left
// its process group are not found.
func sweep(s sweepSpec) {}

// sweepOrphans does nothing without Linux's /proc.
func sweepOrphans(job string) {}

// startOf is 0: no /proc to read a start time from.
func startOf(pid int) uint64 { return 0 }

// killHolders finds nothing without Linux's /proc: a rank's streams that
// stay open after it ended are closed, and what holds them is left.
func killHolders(inodes []uint64, running func(pid int) bool) {}

// inode is 0: killHolders does not use it here.
func inode(f *os.File) uint64 { return 0 }

// lineage records nothing without Linux's /proc.
type lineage struct{}

func newLineage(parent int) *lineage { return &lineage{} }
func (l *lineage) record()           {}
func (l *lineage) kill()             {}

// keeperSupported says whether a keeper can do anything here: not without
// Linux's /proc.
const keeperSupported = false
