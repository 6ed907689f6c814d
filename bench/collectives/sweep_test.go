package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

var (
	sweepRanks  = flag.String("sweep.n", "2,8", "BenchmarkSweep: the job sizes, comma-separated")
	sweepSizes  = flag.String("sweep.sizes", "8:8388608", "BenchmarkSweep: the sizes (as -sizes)")
	sweepOpList = flag.String("sweep.ops", "all", "BenchmarkSweep: the operations (as -op)")
	sweepBudget = flag.Duration("sweep.budget", 250*time.Millisecond, "BenchmarkSweep: the time per size (as -budget)")
)

// sweepLine is a result line of the sweep, of the Go program or of
// testdata/sweep.c.
var sweepLine = regexp.MustCompile(`(?m)^result op=(\S+) n=(\d+) size=(\d+) iters=(\d+) avg_us=([0-9.]+) min_us=([0-9.]+) max_us=([0-9.]+)$`)

// sweepRow is one size of one operation.
type sweepRow struct {
	op   string
	size int
	avg  float64
}

// parseSweep reads the result lines of a sweep, in their order.
func parseSweep(out []byte) []sweepRow {
	var rows []sweepRow
	for _, m := range sweepLine.FindAllSubmatch(out, -1) {
		size, _ := strconv.Atoi(string(m[3]))
		avg, _ := strconv.ParseFloat(string(m[5]), 64)
		rows = append(rows, sweepRow{op: string(m[1]), size: size, avg: avg})
	}
	return rows
}

// sideBySide writes gorun's rows beside Open MPI's of the same operation
// and size (a dash where Open MPI has none), with gorun's time over Open
// MPI's. An operation into the caller's buffer (bcast_into) is beside
// Open MPI's of the same name without the suffix: MPI's own work so.
func sideBySide(w *bufio.Writer, gorun, ompi []sweepRow) {
	theirs := map[string]float64{}
	for _, r := range ompi {
		theirs[r.op+"/"+strconv.Itoa(r.size)] = r.avg
	}
	fmt.Fprintf(w, "%-15s %10s %12s %12s %8s\n", "op", "size(B)", "gorun(us)", "openmpi(us)", "ratio")
	for _, r := range gorun {
		o, ratio := "-", "-"
		if t, ok := theirs[strings.TrimSuffix(r.op, "_into")+"/"+strconv.Itoa(r.size)]; ok {
			o = fmt.Sprintf("%.2f", t)
			if t > 0 {
				ratio = fmt.Sprintf("%.2fx", r.avg/t)
			}
		}
		fmt.Fprintf(w, "%-15s %10d %12.2f %12s %8s\n", r.op, r.size, r.avg, o, ratio)
	}
	w.Flush()
}

// TestSideBySide: the sweep's table pairs gorun's and Open MPI's rows by
// operation and size, and says where Open MPI has none.
func TestSideBySide(t *testing.T) {
	gorun := parseSweep([]byte("# bcast\nresult op=bcast n=8 size=8 iters=100 avg_us=20.00 min_us=1.00 max_us=30.00\n" +
		"result op=bcast n=8 size=16 iters=100 avg_us=30.00 min_us=1.00 max_us=30.00\n" +
		"result op=scan n=8 size=8 iters=100 avg_us=5.00 min_us=1.00 max_us=30.00\n"))
	ompi := parseSweep([]byte("result op=scan n=8 size=8 iters=100 avg_us=10.00 min_us=1.00 max_us=30.00\n" +
		"result op=bcast n=8 size=8 iters=100 avg_us=10.00 min_us=1.00 max_us=30.00\n"))
	var b bytes.Buffer
	sideBySide(bufio.NewWriter(&b), gorun, ompi)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"op", "size(B)", "gorun(us)", "openmpi(us)", "ratio"},
		{"bcast", "8", "20.00", "10.00", "2.00x"},
		{"bcast", "16", "30.00", "-", "-"},
		{"scan", "8", "5.00", "10.00", "0.50x"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}
}

// TestSweep: a sweep of every operation over three sizes (one below the
// element size, one not a multiple of it, one past the inline limits)
// prints one checked result line per operation and size, a barrier one.
func TestSweep(t *testing.T) {
	testbin.MultiProcess(t)
	build(t)
	sizes := []int{3, 1001, 70001}
	out, err := exec.Command(bin.gorun, "-n", "3", bin.prog, "-op", "all", "-sizes", "3,1001,70001", "-iters", "3", "-warmup", "1", "-budget", "1ms").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rows := parseSweep(out)
	if want := (len(sweepOps)-1)*len(sizes) + 1; len(rows) != want {
		t.Fatalf("%d result lines, want %d:\n%s", len(rows), want, out)
	}
}

// BenchmarkSweep runs the OSU-style sweep of every collective with gorun
// and, where mpicc and mpirun are installed (make bench installs them),
// with Open MPI's own collectives (testdata/sweep.c), in one run, and
// prints the two side by side:
//
//	go test -run '^$' -bench Sweep ./bench/collectives
//	go test -run '^$' -bench Sweep ./bench/collectives -args -sweep.n 8 -sweep.ops allreduce,bcast -sweep.sizes 8:1048576
func BenchmarkSweep(b *testing.B) {
	build(b)
	cprog := ""
	if _, err := exec.LookPath("mpicc"); err == nil {
		cprog = filepath.Join(bin.dir, "sweep-c")
		if out, err := exec.Command("mpicc", "-O2", "-o", cprog, "testdata/sweep.c").CombinedOutput(); err != nil {
			b.Fatalf("mpicc: %v\n%s", err, out)
		}
	}
	args := []string{"-op", *sweepOpList, "-sizes", *sweepSizes, "-iters", "1000", "-warmup", "3"}
	for b.Loop() {
		for f := range strings.SplitSeq(*sweepRanks, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("-sweep.n %q: want job sizes, as 2,8", *sweepRanks)
			}
			gargs := append([]string{"-n", f, bin.prog, "-budget", sweepBudget.String()}, args...)
			out, err := exec.Command(bin.gorun, gargs...).CombinedOutput()
			if err != nil {
				b.Fatalf("gorun %v: %v\n%s", gargs, err, out)
			}
			gorun := parseSweep(out)
			var ompi []sweepRow
			if cprog != "" {
				cargs := []string{"--oversubscribe", "-n", f}
				if os.Getuid() == 0 {
					cargs = append(cargs, "--allow-run-as-root")
				}
				cargs = append(append(cargs, cprog, "-budget", strconv.FormatFloat(sweepBudget.Seconds(), 'f', -1, 64)), args...)
				out, err := exec.Command("mpirun", cargs...).CombinedOutput()
				if err != nil {
					b.Fatalf("mpirun %v: %v\n%s", cargs, err, out)
				}
				ompi = parseSweep(out)
			}
			over := ""
			if n > runtime.NumCPU() {
				over = ", oversubscribed"
			}
			fmt.Printf("collectives sweep, n=%d (%d CPUs%s): mean time per call, OSU-style\n", n, runtime.NumCPU(), over)
			sideBySide(bufio.NewWriter(os.Stdout), gorun, ompi)
		}
	}
}

// TestParseSizes: -sizes doubles from lo to hi or takes a list, and
// refuses what is not sizes, and sizes past maxSize, with one error.
func TestParseSizes(t *testing.T) {
	if got, err := parseSizes("8:100"); err != nil || fmt.Sprint(got) != "[8 16 32 64]" {
		t.Errorf("8:100 = %v, %v", got, err)
	}
	if got, err := parseSizes("3,1001"); err != nil || fmt.Sprint(got) != "[3 1001]" {
		t.Errorf("3,1001 = %v, %v", got, err)
	}
	for _, bad := range []string{"0:8", "9:8", "8:x", "8,,16", "-1", "8:9223372036854775807", strconv.Itoa(maxSize + 1)} {
		if _, err := parseSizes(bad); err == nil || !strings.Contains(err.Error(), "-sizes") {
			t.Errorf("%q: %v, want an error naming -sizes", bad, err)
		}
	}
}
