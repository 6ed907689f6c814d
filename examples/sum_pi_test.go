package examples_test

// End-to-end tests of examples/sum and examples/pi: the real gorun, built in
// TestMain, runs the examples' real processes on its embedded NATS server.

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

var bin struct{ gorun, sum, pi string }

func TestMain(m *testing.M) {
	testbin.Main(m, "gorun-examples-",
		testbin.Prog{Out: &bin.gorun, Pkg: "../cmd/gorun"},
		testbin.Prog{Out: &bin.sum, Pkg: "./sum"},
		testbin.Prog{Out: &bin.pi, Pkg: "./pi"})
}

// gorun runs a job and returns its stdout; it fails t if the job fails.
func gorun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin.gorun, append([]string{"--timeout", "2m"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gorun %s: %v after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, time.Since(start), out, stderr.String())
	}
	return string(out)
}

var sumLine = regexp.MustCompile(`sum of (\d+) numbers over (\d+) ranks: ([0-9.]+) \(serial ([0-9.]+)`)
var sharesLine = regexp.MustCompile(`shares \(elements per rank\): \[([0-9 ]*)\]`)

// TestSum runs examples/sum at the sizes the issue names, and checks the
// printed sum and shares against what they must be.
func TestSum(t *testing.T) {
	testbin.MultiProcess(t)
	for _, tt := range []struct {
		ranks, n int
		args     []string
	}{
		{8, 10_000_000, nil},
		{1, 10_000_000, nil},
		{64, 1000, []string{"-n", "1000"}},
		{5, 3, []string{"-n", "3"}}, // fewer numbers than ranks
	} {
		t.Run(fmt.Sprintf("ranks=%d/n=%d", tt.ranks, tt.n), func(t *testing.T) {
			out := gorun(t, append([]string{"-n", strconv.Itoa(tt.ranks), bin.sum}, tt.args...)...)
			t.Log(strings.TrimSpace(out))
			m := sumLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no sum line in:\n%s", out)
			}
			if m[1] != strconv.Itoa(tt.n) || m[2] != strconv.Itoa(tt.ranks) {
				t.Errorf("sum line says %s numbers over %s ranks, want %d over %d", m[1], m[2], tt.n, tt.ranks)
			}
			got, _ := strconv.ParseFloat(m[3], 64)
			want := 0.0
			for i := range tt.n {
				want += 1 + 1/float64(1+i%1000)
			}
			if d := got - want; d > 1e-6*want || d < -1e-6*want {
				t.Errorf("sum %v, want %v", got, want)
			}
			s := sharesLine.FindStringSubmatch(out)
			if s == nil {
				t.Fatalf("no shares line in:\n%s", out)
			}
			shares := strings.Fields(s[1])
			if len(shares) != tt.ranks {
				t.Fatalf("%d shares for %d ranks", len(shares), tt.ranks)
			}
			for r, f := range shares {
				want := tt.n / tt.ranks
				if r < tt.n%tt.ranks {
					want++
				}
				if f != strconv.Itoa(want) {
					t.Errorf("rank %d's share is %s, want %d", r, f, want)
				}
			}
		})
	}
}

// TestPi runs examples/pi, which checks its own estimate on every rank.
func TestPi(t *testing.T) {
	testbin.MultiProcess(t)
	for _, ranks := range []int{1, 3, 8} {
		out := gorun(t, "-n", strconv.Itoa(ranks), bin.pi, "-samples", "2000000")
		t.Log(strings.TrimSpace(out))
		if !strings.Contains(out, fmt.Sprintf("from 2000000 points over %d ranks", ranks)) {
			t.Errorf("unexpected output:\n%s", out)
		}
	}
}

// TestSumBadFlag: a wrong flag is one clear message and a non-zero exit.
func TestSumBadFlag(t *testing.T) {
	testbin.MultiProcess(t)
	cmd := exec.Command(bin.gorun, "-n", "2", bin.sum, "-n", "-5")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("no error; output:\n%s", out)
	}
	if !strings.Contains(string(out), "-n -5: must not be negative") || strings.Contains(string(out), "goroutine") {
		t.Errorf("output:\n%s", out)
	}
}
