package launcher

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// strictWriter fails the test if two Writes overlap, and keeps what was
// written, one entry per Write.
type strictWriter struct {
	t      *testing.T
	busy   atomic.Bool
	mu     sync.Mutex
	writes []string
}

func (w *strictWriter) Write(p []byte) (int, error) {
	if !w.busy.CompareAndSwap(false, true) {
		w.t.Errorf("two Writes at once")
	}
	time.Sleep(time.Microsecond)
	w.mu.Lock()
	w.writes = append(w.writes, string(p))
	w.mu.Unlock()
	w.busy.Store(false)
	return len(p), nil
}

// A line of any length arrives whole, in one Write, however the rank's
// writes cut it; stdout and stderr of many ranks never overlap.
func TestOutputWholeLines(t *testing.T) {
	shared := &strictWriter{t: t}
	o := newOutput(shared, shared, true)
	const ranks = 4
	sizes := []int{1, 100, 4095, 4096, 70000, 300000, 5}
	for r := range ranks {
		for _, toErr := range []bool{false, true} {
			pr, pw := io.Pipe()
			o.forward(r, pr, toErr)
			go func() {
				for i, n := range sizes {
					line := []byte(fmt.Sprintf("%d/%v/%d:%s\n", r, toErr, i, strings.Repeat("x", n)))
					for len(line) > 0 { // cut into odd pieces
						k := min(len(line), 1+(len(line)*7)%1021)
						pw.Write(line[:k])
						line = line[k:]
					}
				}
				pw.Close()
			}()
		}
	}
	if !o.wait(time.Minute) {
		t.Fatal("wait timed out")
	}
	if len(shared.writes) != ranks*2*len(sizes) {
		t.Fatalf("%d writes, want %d", len(shared.writes), ranks*2*len(sizes))
	}
	seen := map[string]bool{}
	for _, w := range shared.writes {
		var r, i int
		var kind string
		if _, err := fmt.Sscanf(w, "[%d] ", &r); err != nil {
			t.Fatalf("untagged write %.40q", w)
		}
		head, rest, _ := strings.Cut(strings.TrimPrefix(w, fmt.Sprintf("[%d] ", r)), ":")
		parts := strings.Split(head, "/")
		kind = parts[1]
		fmt.Sscan(parts[2], &i)
		if want := strings.Repeat("x", sizes[i]) + "\n"; rest != want {
			t.Fatalf("line %s of rank %d: %d bytes, want %d", kind, r, len(rest), len(want))
		}
		seen[head] = true
	}
	if len(seen) != ranks*2*len(sizes) {
		t.Fatalf("%d distinct lines, want %d", len(seen), ranks*2*len(sizes))
	}
}

// A last line without newline is printed with one; an empty stream prints
// nothing; stdout goes to stdout and stderr to stderr.
func TestOutputPartialAndStreams(t *testing.T) {
	var stdout, stderr bytes.Buffer
	o := newOutput(&stdout, &stderr, false)
	o.forward(0, io.NopCloser(strings.NewReader("one\ntwo")), false)
	o.forward(1, io.NopCloser(strings.NewReader("")), false)
	o.forward(1, io.NopCloser(strings.NewReader("err\n\n")), true)
	o.wait(time.Minute)
	if got := stdout.String(); got != "one\ntwo\n" {
		t.Errorf("stdout %q", got)
	}
	if got := stderr.String(); got != "err\n\n" {
		t.Errorf("stderr %q", got)
	}
}

// Panics on a rank's stderr are noticed (and only its own). An abort line
// is not: gorun learns of Abort from the rank's control descriptor.
func TestOutputNotes(t *testing.T) {
	o := newOutput(io.Discard, io.Discard, false)
	o.forward(1, io.NopCloser(strings.NewReader("x\npanic: boom\n\ngoroutine 1 [running]:\n")), true)
	o.forward(2, io.NopCloser(strings.NewReader("panic: on stdout only\n")), false)
	o.forward(3, io.NopCloser(strings.NewReader("mpi: rank 3 aborted the job with code 9\n")), true)
	o.forward(4, io.NopCloser(strings.NewReader("mpi: rank 3 aborted the job with code 9\n")), true)
	o.wait(time.Minute)
	if !o.panicked(1) || o.panicked(2) || o.panicked(3) {
		t.Errorf("panicked: 1 %v, 2 %v, 3 %v; want true, false, false", o.panicked(1), o.panicked(2), o.panicked(3))
	}
}

// TestOutputLastWords: gorun's verdict quotes a rank's panic message, or
// else its last line on stderr (without log's date and time), never what
// it wrote on stdout.
func TestOutputLastWords(t *testing.T) {
	o := newOutput(io.Discard, io.Discard, false)
	o.forward(1, io.NopCloser(strings.NewReader("x\npanic: boom\n\ngoroutine 1 [running]:\nmain.main()\n")), true)
	o.forward(2, io.NopCloser(strings.NewReader("first\n2026/12/06 12:49:12 rank 2: bad input\n\n")), true)
	o.forward(3, io.NopCloser(strings.NewReader("on stdout\n")), false)
	o.forward(4, io.NopCloser(strings.NewReader(strings.Repeat("y", 2*maxWords)+"\n")), true)
	o.wait(time.Minute)
	for rank, want := range map[int]string{1: "boom", 2: "rank 2: bad input", 3: "", 4: strings.Repeat("y", maxWords) + "..."} {
		if got := o.lastWords(rank); got != want {
			t.Errorf("rank %d: last words %q, want %q", rank, got, want)
		}
	}
}

// TestOutputNoForgedLines: without --tag-output a rank's line that starts
// as gorun's own lines do gets the rank's tag; other lines pass as they
// are.
func TestOutputNoForgedLines(t *testing.T) {
	var stdout, stderr bytes.Buffer
	o := newOutput(&stdout, &stderr, false)
	o.forward(3, io.NopCloser(strings.NewReader("gorun: rank 0 exited with status 0\nfine gorun: here\n")), true)
	o.forward(2, io.NopCloser(strings.NewReader("gorun:x\n")), false)
	o.wait(time.Minute)
	if got, want := stderr.String(), "[3] gorun: rank 0 exited with status 0\nfine gorun: here\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	if got, want := stdout.String(), "[2] gorun:x\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// wait gives up on a stream held open (by a process that escaped its rank),
// closes it, and still returns what was written.
func TestOutputWaitClosesStuck(t *testing.T) {
	var stdout bytes.Buffer
	o := newOutput(&stdout, io.Discard, false)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("before\nhalf"))
	o.forward(0, r, false)
	start := time.Now()
	if o.wait(100 * time.Millisecond) {
		t.Fatal("wait says the stream ended")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("wait took %v", d)
	}
	if got := stdout.String(); got != "before\nhalf\n" {
		t.Fatalf("stdout %q", got)
	}
}

// A line longer than MaxLine goes out in pieces of MaxLine bytes, each
// ended by a newline, with one note on gorun's stderr; the next line is
// whole again, and an exact MaxLine line is one line.
func TestOutputLineCap(t *testing.T) {
	var stdout, stderr bytes.Buffer
	o := newOutput(&stdout, &stderr, true)
	long := strings.Repeat("y", 2*MaxLine+MaxLine/2)
	exact := strings.Repeat("z", MaxLine)
	o.forward(3, io.NopCloser(strings.NewReader(long+"\nshort\n"+exact+"\n"+long)), false)
	o.wait(time.Minute)
	piece := "[3] " + strings.Repeat("y", MaxLine) + "\n"
	rest := "[3] " + strings.Repeat("y", MaxLine/2) + "\n"
	want := piece + piece + rest + "[3] short\n" + "[3] " + exact + "\n" + piece + piece + rest
	if got := stdout.String(); got != want {
		t.Errorf("stdout: %d bytes, want %d (first differs at %d)", len(got), len(want), firstDiff(got, want))
	}
	if n := strings.Count(stderr.String(), "longer than 1 MiB"); n != 1 {
		t.Errorf("%d notes about long lines, want 1: %q", n, stderr.String())
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
