package main

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// line is line i of a rank's output of kind ("O" stdout, "E" stderr), as
// testdata/rankprog writes it: size bytes with the newline.
func line(kind string, rank, i, size int) string {
	head := fmt.Sprintf("%s %d %d ", kind, rank, i)
	return head + strings.Repeat(string(rune('a'+(rank*7+i)%26)), size-1-len(head))
}

// checkLines checks that text holds every line of kind from ranks ranks,
// n lines of size bytes each, whole and exactly once, each prefixed with
// "[rank] " when tagged, and nothing else.
func checkLines(t *testing.T, name, text, kind string, ranks, n, size int, tagged bool) {
	t.Helper()
	seen := make(map[string]bool)
	count := 0
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if !strings.HasPrefix(strings.TrimLeft(l, "[0123456789] "), kind+" ") {
			continue // rankprog's "pid" lines
		}
		var rank, i int
		body := l
		if tagged {
			if _, err := fmt.Sscanf(l, "[%d] ", &rank); err != nil {
				t.Fatalf("%s: untagged line %.60q", name, l)
			}
			body = strings.TrimPrefix(l, fmt.Sprintf("[%d] ", rank))
		}
		if _, err := fmt.Sscanf(body, kind+" %d %d ", &rank, &i); err != nil {
			t.Fatalf("%s: mangled line %.60q...", name, l)
		}
		if tagged && !strings.HasPrefix(l, fmt.Sprintf("[%d] ", rank)) {
			t.Fatalf("%s: line of rank %d tagged %.10q", name, rank, l)
		}
		if body != line(kind, rank, i, size) {
			t.Fatalf("%s: line %d of rank %d is not whole (%d bytes): %.80q...", name, i, rank, len(body)+1, body)
		}
		if seen[body] {
			t.Fatalf("%s: line %d of rank %d twice", name, i, rank)
		}
		seen[body] = true
		count++
	}
	if count != ranks*n {
		t.Fatalf("%s: %d lines, want %d", name, count, ranks*n)
	}
}

// Acceptance 5: 4 ranks each write 2000 lines of 3 KB to stdout and as many
// to stderr at once, 100 bytes per write: every line arrives whole, once.
// Once with stdout and stderr apart, once (tagged) into one pipe.
func TestOutputWholeLines(t *testing.T) {
	skipShort(t)
	const ranks, n, size, chunk = 4, 2000, 3000, 100
	args := []string{"-n", fmt.Sprint(ranks), bin.rankprog, "lines", fmt.Sprint(n), fmt.Sprint(size), fmt.Sprint(chunk)}

	t.Run("separate", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin.gorun, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runWithin(cmd, 2*time.Minute); err != nil {
			t.Fatalf("%v; stderr: %.2000s", err, stderr.String())
		}
		checkLines(t, "stdout", stdout.String(), "O", ranks, n, size, false)
		checkLines(t, "stderr", stderr.String(), "E", ranks, n, size, false)
	})
	t.Run("one-pipe-tagged", func(t *testing.T) {
		cmd := exec.Command(bin.gorun, append([]string{"--tag-output"}, args...)...)
		r, w := io.Pipe()
		cmd.Stdout, cmd.Stderr = w, w // one pipe behind both
		var both bytes.Buffer
		copied := make(chan error)
		go func() { _, err := io.Copy(&both, r); copied <- err }()
		err := runWithin(cmd, 2*time.Minute)
		w.Close()
		<-copied
		if err != nil {
			t.Fatalf("%v; output: %.2000s", err, both.String())
		}
		checkLines(t, "stdout", both.String(), "O", ranks, n, size, true)
		checkLines(t, "stderr", both.String(), "E", ranks, n, size, true)
	})
}

// runWithin runs cmd and kills it after d.
func runWithin(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	t := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer t.Stop()
	return cmd.Wait()
}

// -v: every line gorun writes, the embedded nats-server's included
// ("gorun: nats: Server is ready"), reads as gorun's own; none can be
// taken for a rank's "[N] " line under --tag-output, as the server's own
// "[1234] 2026/01/02 ... [INF] ..." lines could.
func TestVerboseLinesAreGorunsOwn(t *testing.T) {
	skipShort(t)
	const ranks, n = 3, 5
	code, out, stderr := runJob(t, time.Minute, "-v", "--tag-output", "-n", fmt.Sprint(ranks), bin.rankprog, "lines", fmt.Sprint(n), "40", "40")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	checkLines(t, "stdout", strings.Join(out, "\n"), "O", ranks, n, 40, true)
	checkLines(t, "stderr", stderr, "E", ranks, n, 40, true)
	nats, rankLines := 0, 0
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if strings.HasPrefix(l, "gorun: ") {
			if strings.HasPrefix(l, "gorun: nats: ") {
				nats++
			}
			continue
		}
		// Anything else must be a rank's line, tagged with its own rank.
		var rank, rank2 int
		if _, err := fmt.Sscanf(l, "[%d] E %d ", &rank, &rank2); err != nil || rank != rank2 || rank < 0 || rank >= ranks {
			t.Errorf("stderr line %q is neither gorun's (gorun: ...) nor a rank's", l)
			continue
		}
		rankLines++
	}
	if nats == 0 {
		t.Errorf("no gorun: nats: line: -v shows nothing of the embedded server:\n%s", stderr)
	}
	if rankLines != ranks*n {
		t.Errorf("%d rank lines on stderr, want %d", rankLines, ranks*n)
	}
	t.Logf("-v: %d lines of the server's, prefixed gorun: nats:", nats)
}
