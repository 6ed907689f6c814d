package main

import (
	"os/exec"
	"slices"
	"testing"
	"time"
)

// BenchmarkLaunchHello8 is the wall time of `gorun -n 8 hello` on a prebuilt
// hello binary: gorun's start, the embedded NATS server, 8 processes that
// each join the job (mpi.Init), print a line and leave, and the teardown.
// It reports the median as ms-median (Open MPI takes about 436 ms for the
// same on this kind of machine, MPICH 288 ms).
func BenchmarkLaunchHello8(b *testing.B) {
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		out, err := exec.Command(bin.gorun, "-n", "8", bin.hello).CombinedOutput()
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-median")
}
