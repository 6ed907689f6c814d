package examples

// End-to-end tests of the pattern examples (halo, workers, pingpong): the real
// gorun binary runs them as real rank processes on its embedded NATS server,
// and each example checks its own answer.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

func TestPatterns(t *testing.T) {
	testbin.MultiProcess(t)
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"../cmd/gorun", "./halo", "./halo2d", "./workers", "./pingpong")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gorun := filepath.Join(dir, "gorun")
	prog := func(name string) string { return filepath.Join(dir, name) }

	for _, n := range []int{1, 3, 4} {
		t.Run(fmt.Sprintf("halo/n=%d", n), func(t *testing.T) {
			out := runOK(t, gorun, "-n", fmt.Sprint(n), prog("halo"), "-points", "1001", "-steps", "200")
			okLine(t, out, "halo: OK:", fmt.Sprintf("1001 points, 200 steps on %d ranks: max error 0 ", n))
		})
	}

	for _, c := range []struct{ n, px, py int }{{1, 1, 1}, {4, 2, 2}, {6, 3, 2}, {9, 3, 3}} {
		t.Run(fmt.Sprintf("halo2d/n=%d", c.n), func(t *testing.T) {
			out := runOK(t, gorun, "-n", fmt.Sprint(c.n), prog("halo2d"), "-steps", "100")
			okLine(t, out, "halo2d: OK:", fmt.Sprintf("60x40 plate, 100 steps on a %dx%d grid of ranks: max error 0", c.px, c.py))
		})
	}

	for _, c := range []struct {
		n, tasks int
		static   bool
	}{{1, 40, false}, {4, 40, false}, {4, 2, false}, {4, 42, true}} {
		t.Run(fmt.Sprintf("workers/n=%d/tasks=%d/static=%t", c.n, c.tasks, c.static), func(t *testing.T) {
			args := []string{"-n", fmt.Sprint(c.n), prog("workers"), "-tasks", fmt.Sprint(c.tasks), "-bits", "36"}
			if c.static {
				args = append(args, "-static")
			}
			out := runOK(t, gorun, args...)
			okLine(t, out, "workers: OK:", fmt.Sprintf("%d tasks on %d ranks, every result matches", c.tasks, c.n))
			// Every task is counted once, by the rank that did it (the
			// results name it); every rank, rank 0 included, works.
			counts := make([]int, c.n)
			done, lines := 0, 0
			for _, l := range strings.Split(out, "\n") {
				var r, k int
				if _, err := fmt.Sscanf(l, "workers: rank %d did %d tasks", &r, &k); err == nil && r >= 0 && r < c.n {
					counts[r] = k
					done += k
					lines++
				}
			}
			if lines != c.n || done != c.tasks {
				t.Errorf("%d per-rank lines adding up to %d tasks; want %d lines, %d tasks:\n%s", lines, done, c.n, c.tasks, out)
			}
			if c.static {
				// pool.Static: blocks of 11, 11, 10, 10.
				if want := []int{11, 11, 10, 10}; fmt.Sprint(counts) != fmt.Sprint(want) {
					t.Errorf("static: tasks per rank %v, want %v", counts, want)
				}
			}
		})
	}

	t.Run("pingpong/n=2", func(t *testing.T) {
		sizes := []string{"8", "1024", "200000", "20000000"} // eager, eager, rendezvous in one chunk, in three (8 MiB each)
		out := runOK(t, gorun, "-n", "2", prog("pingpong"), "-sizes", strings.Join(sizes, ","),
			"-iters", "3", "-iters-large", "2", "-warmup", "1", "-window", "4", "-bw-iters", "2", "-bw-iters-large", "1")
		okLine(t, out, "pingpong: OK:", "every byte checked")
		for _, s := range sizes {
			var lat, bw float64
			found := false
			for _, l := range strings.Split(out, "\n") {
				var size string
				if _, err := fmt.Sscanf(l, "  0-1 %s %f %f", &size, &lat, &bw); err == nil && size == s {
					found = true
					break
				}
			}
			if !found || lat <= 0 || bw <= 0 {
				t.Errorf("no table row for pair 0-1, %s bytes, with positive latency and bandwidth:\n%s", s, out)
			}
		}
	})

	t.Run("pingpong/n=1", func(t *testing.T) {
		code, out, stderr := run(t, gorun, "-n", "1", prog("pingpong"))
		if code == 0 || !strings.Contains(stderr, "pingpong: needs at least 2 ranks") {
			t.Errorf("exit %d, want non-zero with a message; stdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
	})
}

// run runs gorun with args (at most a minute) and returns its exit status,
// stdout and stderr.
func run(t *testing.T, gorun string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gorun, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("gorun %s did not finish within a minute; stdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), stdout.String(), stderr.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// runOK runs gorun with args, fails the test unless it exits 0, and returns
// its stdout.
func runOK(t *testing.T, gorun string, args ...string) string {
	t.Helper()
	code, out, stderr := run(t, gorun, args...)
	if code != 0 {
		t.Fatalf("gorun %s: exit %d; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// okLine fails the test unless exactly one line of out starts with prefix,
// and that line contains want.
func okLine(t *testing.T, out, prefix, want string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], want) {
		t.Fatalf("want one %q line containing %q; stdout:\n%s", prefix, want, out)
	}
}
