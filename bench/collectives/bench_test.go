package main

// Benchmarks of the collectives through real processes: each runs this
// package's program under the real gorun, with b.N timed calls, and reports
// the program's own figure (the OSU-style average over ranks of the mean
// time per call) as ns/op, so that the launch is not counted. max-us is the
// slowest rank's mean.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

var (
	buildOnce sync.Once
	buildErr  error
	bin       struct{ dir, gorun, prog string }
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// build builds gorun and this program once, the first time a benchmark
// or test needs them.
func build(b testing.TB) {
	buildOnce.Do(func() {
		if bin.dir, buildErr = os.MkdirTemp("", "gorun-bench-"); buildErr != nil {
			return
		}
		bin.gorun = filepath.Join(bin.dir, "gorun")
		bin.prog = filepath.Join(bin.dir, "collectives")
		for _, p := range []struct{ out, pkg string }{{bin.gorun, "../../cmd/gorun"}, {bin.prog, "."}} {
			if out, err := exec.Command("go", "build", "-o", p.out, p.pkg).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("building %s: %v\n%s", p.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
}

var result = regexp.MustCompile(`result .* avg_us=([0-9.]+) min_us=([0-9.]+) max_us=([0-9.]+)`)

// job runs the program on n ranks with b.N timed calls of op.
func job(b *testing.B, n int, args ...string) {
	b.StopTimer()
	build(b)
	b.StartTimer()
	all := append([]string{"-n", strconv.Itoa(n), bin.prog, "-iters", strconv.Itoa(b.N), "-warmup", "2"}, args...)
	out, err := exec.Command(bin.gorun, all...).CombinedOutput()
	if err != nil {
		b.Fatalf("gorun %v: %v\n%s", all, err, out)
	}
	m := result.FindSubmatch(out)
	if m == nil {
		b.Fatalf("no result line in:\n%s", out)
	}
	avg, _ := strconv.ParseFloat(string(m[1]), 64)
	hi, _ := strconv.ParseFloat(string(m[3]), 64)
	b.ReportMetric(avg*1e3, "ns/op")
	b.ReportMetric(hi, "max-us")
}

var ranks = []int{2, 4, 8}

// TestResults runs each operation of the program under the real gorun, on
// an odd and a power-of-two number of ranks, with sizes that take the bulk
// paths (fan-out, single copies, and with -single-copy=false chunks through
// the bus) and are not multiples of the element size or rank count; the
// program checks the result of its last call and exits non-zero if it is
// wrong.
func TestResults(t *testing.T) {
	testbin.MultiProcess(t)
	build(t)
	ops := [][]string{
		{"-op", "bcast", "-bytes", "9000001"},
		{"-op", "allreduce", "-count", "1000003"},
		{"-op", "reduce", "-count", "700001"},
		{"-op", "allgather", "-bytes", "300001"},
		{"-op", "alltoall", "-bytes", "750001"},
		{"-op", "scatter,gather", "-bytes", "300001"},
		{"-op", "reduce_scatter,scan", "-count", "300001"},
		{"-op", "barrier"},
	}
	for _, n := range []int{3, 4} {
		for _, single := range []string{"true", "false"} {
			for _, op := range ops {
				args := append([]string{"-n", strconv.Itoa(n), bin.prog, "-iters", "2", "-warmup", "1", "-single-copy=" + single}, op...)
				out, err := exec.Command(bin.gorun, args...).CombinedOutput()
				want := len(strings.Split(op[1], ","))
				if got := len(result.FindAll(out, -1)); err != nil || got != want {
					t.Errorf("gorun %v: %v, %d result lines, want %d\n%s", args, err, got, want, out)
				}
			}
		}
	}
}

// BenchmarkBarrier: Open MPI takes 13 us at n=8 on this kind of machine
// (2 cores), MPICH (busy-polling, oversubscribed) 36 ms.
func BenchmarkBarrier(b *testing.B) {
	for _, n := range ranks {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { job(b, n, "-op", "barrier") })
	}
}

// BenchmarkBcast8MiB: Open MPI 4.3 ms at n=8, MPICH 156 ms.
func BenchmarkBcast8MiB(b *testing.B) {
	for _, n := range ranks {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { job(b, n, "-op", "bcast", "-bytes", "8388608") })
	}
}

// BenchmarkAllreduce1e6: 1e6 float64 summed; Open MPI 12.4 ms at n=8,
// MPICH 100 ms.
func BenchmarkAllreduce1e6(b *testing.B) {
	for _, n := range ranks {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { job(b, n, "-op", "allreduce", "-count", "1000000") })
	}
}

// BenchmarkIallreduceOverlap: an Allreduce of 1e6 float64 and 50 ms of
// work that does not need its result, one after the other (sequential) and
// overlapped (Iallreduce, the work, Wait): overlapped takes less.
func BenchmarkIallreduceOverlap(b *testing.B) {
	for _, n := range []int{2, 4} {
		for _, way := range []struct{ name, op string }{{"sequential", "allreduce+compute"}, {"overlapped", "iallreduce+compute"}} {
			b.Run(fmt.Sprintf("n=%d/%s", n, way.name), func(b *testing.B) {
				job(b, n, "-op", way.op, "-count", "1000000", "-compute", "50ms")
			})
		}
	}
}
