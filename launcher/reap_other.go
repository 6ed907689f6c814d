//go:build !linux

package launcher

// becomeSubreaper does nothing: child subreapers are Linux's.
func becomeSubreaper() {}

// sweep does nothing without Linux's /proc: a rank's descendants that left
// its process group are not found.
func sweep(job string, ours func(pid int) bool) {}

// sweepOrphans does nothing without Linux's /proc.
func sweepOrphans(job string) {}

// keeperSupported says whether a keeper can do anything here: not without
// Linux's /proc.
const keeperSupported = false
