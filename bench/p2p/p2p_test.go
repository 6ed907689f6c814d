// Package p2p benchmarks gorun's point-to-point messages between two rank
// processes: it builds gorun and examples/pingpong, runs
//
//	gorun -n 2 pingpong -sizes 8,1024,65536,1048576,4194304
//
// and prints pingpong's table (half round-trip latency and one-way
// bandwidth with a window of Isends, OSU style). Run it with `make bench`, or
//
//	go test -run='^$' -bench=. ./bench/p2p
package p2p

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sizes are the message sizes measured: eager (8 B, 1 KiB, 64 KiB is the
// eager limit's edge) and rendezvous (1 MiB, 4 MiB).
var sizes = []string{"8", "1024", "65536", "1048576", "4194304"}

// BenchmarkPingPong runs the pingpong job once per iteration, prints its
// table the first time, and reports, from the last run, the latency of 8-byte
// messages (us-8B) and the bandwidth with 1 MiB and 4 MiB messages (MB/s-1MiB,
// MB/s-4MiB). ns/op is the wall time of the whole job, start-up included.
func BenchmarkPingPong(b *testing.B) {
	dir := b.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../../cmd/gorun", "../../examples/pingpong")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	args := []string{"-n", "2", filepath.Join(dir, "pingpong"), "-sizes", strings.Join(sizes, ",")}
	var out []byte
	printed := false
	for b.Loop() {
		var err error
		out, err = exec.Command(filepath.Join(dir, "gorun"), args...).CombinedOutput()
		if err != nil {
			b.Fatalf("gorun %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !printed {
			fmt.Printf("gorun -n 2 pingpong -sizes %s\n%s", strings.Join(sizes, ","), out)
			printed = true
		}
	}
	lat, bw := table(b, out)
	b.ReportMetric(lat["8"], "us-8B")
	b.ReportMetric(bw["1048576"], "MB/s-1MiB")
	b.ReportMetric(bw["4194304"], "MB/s-4MiB")
}

// table parses pingpong's rows for pair 0-1 into latency and bandwidth by
// size, and fails b unless every size has a row and the check line is there.
func table(b *testing.B, out []byte) (lat, bw map[string]float64) {
	lat, bw = make(map[string]float64), make(map[string]float64)
	ok := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var size string
		var l, w float64
		if _, err := fmt.Sscanf(sc.Text(), "  0-1 %s %f %f", &size, &l, &w); err == nil {
			lat[size], bw[size] = l, w
		}
		ok = ok || strings.HasPrefix(sc.Text(), "pingpong: OK:")
	}
	for _, s := range sizes {
		if _, found := lat[s]; !found {
			b.Fatalf("no row for %s bytes in:\n%s", s, out)
		}
	}
	if !ok {
		b.Fatalf("no \"pingpong: OK:\" line in:\n%s", out)
	}
	return lat, bw
}
