package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var winprog lazyProg

// pathLine is --stats's line of what a rank sent by each path.
var pathLine = regexp.MustCompile(`rank (\d+) sent by path: bus (\d+) frames (\d+) bytes, shared memory (\d+) frames (\d+) bytes; copied out of other ranks' memory: (\d+) bytes`)

// pathStats parses --stats's path lines: rank -> [bus frames, bus bytes,
// ring frames, ring bytes, copied bytes].
func pathStats(t *testing.T, stderr string, n int) map[int][5]int64 {
	t.Helper()
	out := map[int][5]int64{}
	for _, m := range pathLine.FindAllStringSubmatch(stderr, -1) {
		r, _ := strconv.Atoi(m[1])
		var v [5]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(m[i+2], 10, 64)
		}
		out[r] = v
	}
	if len(out) != n {
		t.Fatalf("path lines for %d ranks, want %d:\n%s", len(out), n, stderr)
	}
	return out
}

// TestStatsPaths: --stats says what went by each path. Ranks of one host
// exchange everything through shared memory (a window's 1 MiB Get costs
// the bus nothing: the data is copied out of the target's memory, the
// protocol's frames go through the rings); with --shm=false the same
// frames go through the bus.
func TestStatsPaths(t *testing.T) {
	prog := winprog.build(t, "winprog", "./testdata/winprog")
	code, _, stderr := runJob(t, time.Minute, "-n", "3", "--stats", prog)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	for r, v := range pathStats(t, stderr, 3) {
		if v[0] != 0 || v[1] != 0 || v[2] == 0 {
			t.Errorf("rank %d sent %d frames (%d bytes) through the bus and %d through shared memory: want none through the bus", r, v[0], v[1], v[2])
		}
		if r != 1 && v[4] < 1<<20 {
			t.Errorf("rank %d copied %d bytes out of rank 1's memory, want its window's 1 MiB", r, v[4])
		}
	}
	code, _, stderr = runJob(t, time.Minute, "-n", "3", "--stats", "--shm=false", prog)
	if code != 0 {
		t.Fatalf("--shm=false: exit %d; stderr:\n%s", code, stderr)
	}
	for r, v := range pathStats(t, stderr, 3) {
		if v[0] == 0 || v[2] != 0 {
			t.Errorf("--shm=false: rank %d sent %d frames through the bus and %d through shared memory", r, v[0], v[2])
		}
	}
}

// segments lists the shared-memory segments in /dev/shm.
func segments(t *testing.T) map[string]bool {
	t.Helper()
	names, err := filepath.Glob("/dev/shm/gorun-shm-*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// TestShmNoneLeftAfterKill: a job one of whose ranks is SIGKILLed, before
// or after Init, leaves nothing in /dev/shm.
func TestShmNoneLeftAfterKill(t *testing.T) {
	before := segments(t)
	for _, mode := range [][]string{{"kill", "1"}, {"mpisleep"}} {
		t.Run(mode[0], func(t *testing.T) {
			j := startJob(t, nil, append([]string{"-n", "3", bin.rankprog}, mode...)...)
			if mode[0] == "mpisleep" {
				j.waitLines("ready", 3, 30*time.Second)
				syscall.Kill(rankPids(t, j.lines())[1], syscall.SIGKILL)
			}
			if code := j.wait(30 * time.Second); code != 128+int(syscall.SIGKILL) {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, 128+int(syscall.SIGKILL), j.errText())
			}
			var left []string
			for s := range segments(t) {
				if !before[s] {
					left = append(left, s)
				}
			}
			if len(left) > 0 {
				t.Errorf("left in /dev/shm: %s", strings.Join(left, ", "))
			}
		})
	}
}
