package main

// BenchmarkStencil prints the side-by-side figures of the stencil: gorun
// over shared memory, gorun over the bus (--shm=false), the Go loop alone,
// and, where mpicc and mpirun are installed (Debian's openmpi-bin and
// libopenmpi-dev: make bench installs them), the same program in C on Open
// MPI, all in one run:
//
//	go test -run='^$' -bench=Stencil ./bench/stencil
//
// The figures are the mean wall time of a step on rank 0. Ranks beyond the
// machine's cores are oversubscribed (it says so).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

var resultLine = regexp.MustCompile(`result us_per_step=([0-9.]+) residual=(\S+)`)

// perStep runs a stencil job and returns its us_per_step and residual.
func perStep(b *testing.B, name string, args ...string) (float64, string) {
	b.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	m := resultLine.FindSubmatch(out)
	if m == nil {
		b.Fatalf("%s: no result line in:\n%s", name, out)
	}
	us, _ := strconv.ParseFloat(string(m[1]), 64)
	return us, string(m[2])
}

func BenchmarkStencil(b *testing.B) {
	dir := b.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../../cmd/gorun", ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	gorun, prog := filepath.Join(dir, "gorun"), filepath.Join(dir, "stencil")
	cprog := ""
	if _, err := exec.LookPath("mpicc"); err == nil {
		cprog = filepath.Join(dir, "stencil-c")
		if out, err := exec.Command("mpicc", "-O2", "-o", cprog, "testdata/stencil.c", "-lm").CombinedOutput(); err != nil {
			b.Fatalf("mpicc: %v\n%s", err, out)
		}
	}
	// The warm-up steps, untimed, are as many as the timed ones where a
	// step is short: a Go rank's first ~2000 steps (its first ~50 ms) cost
	// 2-4 times the later ones, while its heap grows to where the GC
	// recycles it (fresh pages fault in); the figures are the steady state,
	// for both programs alike.
	type run struct{ n, points, steps, warmup int }
	runs := []run{{2, 1000, 4000, 4000}, {8, 1000, 1000, 1000}, {2, 100000, 400, 100}}
	for b.Loop() {
		fmt.Printf("1-D stencil, halo Sendrecv x2 + Allreduce per step; us per step (%d CPUs)\n", runtime.NumCPU())
		fmt.Printf("%-3s %-7s %12s %12s %12s %12s %10s %10s\n", "n", "points", "gorun-shm", "gorun-bus", "openmpi", "go-loop", "shm/ompi", "shm/loop")
		for _, r := range runs {
			args := []string{prog, "-points", strconv.Itoa(r.points), "-steps", strconv.Itoa(r.steps), "-warmup", strconv.Itoa(r.warmup)}
			n := strconv.Itoa(r.n)
			shm, res := perStep(b, "gorun", append([]string{gorun, "-n", n}, args...)...)
			bus, res2 := perStep(b, "gorun --shm=false", append([]string{gorun, "-n", n, "--shm=false"}, args...)...)
			loop, _ := perStep(b, "gorun compute-only", append([]string{gorun, "-n", n}, append(args, "-compute-only")...)...)
			if res != res2 {
				b.Errorf("n=%d points=%d: residual %s over shared memory, %s over the bus", r.n, r.points, res, res2)
			}
			ompi, ratio := "-", "-"
			if cprog != "" {
				cargs := []string{"mpirun", "--oversubscribe", "-n", n}
				if os.Getuid() == 0 {
					cargs = append(cargs, "--allow-run-as-root")
				}
				us, cres := perStep(b, "openmpi", append(cargs, append([]string{cprog}, args[1:]...)...)...)
				if cres != res {
					b.Errorf("n=%d points=%d: residual %s in C on Open MPI, %s with gorun", r.n, r.points, cres, res)
				}
				ompi, ratio = fmt.Sprintf("%.2f", us), fmt.Sprintf("%.1fx", shm/us)
			}
			over := ""
			if r.n > runtime.NumCPU() {
				over = "  (oversubscribed)"
			}
			fmt.Printf("%-3d %-7d %12.2f %12.2f %12s %12.2f %10s %9.2fx%s\n", r.n, r.points, shm, bus, ompi, loop, ratio, shm/loop, over)
			b.ReportMetric(shm, fmt.Sprintf("us-shm-n%d-p%d", r.n, r.points))
		}
	}
}
