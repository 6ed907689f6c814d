package main

import (
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestStoppedReceiver: a receiver stopped for a minute (SIGSTOP, as a
// debugger, a long pause or a suspended VM stops it) while four ranks
// stream 60 KB and 4 MiB messages to it is not dropped by its server:
// after SIGCONT every message arrives, whole and in order. What can queue
// for it is bounded by the eager credit and the rendezvous window it
// grants, well under the server's pending limit; the server's write
// deadline is longer than the stop.
func TestStoppedReceiver(t *testing.T) {
	skipShort(t)
	needLinux(t, "stops a rank with SIGSTOP")
	const n = 400 // small messages per sender
	const stop = 60 * time.Second
	j := startJob(t, nil, "-n", "5", bin.rankprog, "stream", strconv.Itoa(n))
	j.waitLines("ready", 1, time.Minute)
	pid := rankPids(t, j.lines())[0]
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(stop)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	code := j.wait(2 * time.Minute)
	want := "got " + strconv.Itoa(4*(n*60<<10+2*4<<20))
	if code != 0 || len(withPrefix(j.lines(), want)) != 1 {
		t.Fatalf("after %v stopped: exit %d, want 0 and %q; stdout %q; stderr:\n%s", stop, code, want, withPrefix(j.lines(), "got"), j.errText())
	}
}
