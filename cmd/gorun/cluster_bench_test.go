package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testhosts"
)

// pingpongBin is examples/pingpong, built once.
var pingpongBin lazyProg

func buildPingpong(b testing.TB) string {
	return pingpongBin.build(b, "pingpong", "../../examples/pingpong")
}

// clusterLinkRate is the rate every host's link is shaped to, both ways.
const (
	clusterLinkRate = "200mbit"
	clusterLinkMBps = 25.0 // 200 Mbit/s in MB/s (10^6 bytes)
)

// BenchmarkClusterPairs measures what the job's cluster gives two disjoint
// pairs of ranks on different hosts at once: five namespace hosts (own
// network and PID namespaces) whose links are shaped to 200 Mbit/s each
// way, gorun on host 1, one rank on each of hosts 2-5, and pingpong's
// bandwidth test with 1 MiB messages between hosts 2 and 4, and 3 and 5,
// at the same time. It prints each pair's bandwidth, the link rate, and
// the bytes that crossed the launcher's link (host 1's) against the bytes
// the ranks' hosts sent. Run it with
//
//	go test -run '^$' -bench ClusterPairs ./cmd/gorun/
//
// (root, and the packages of scripts/test-deps.sh).
func BenchmarkClusterPairs(b *testing.B) {
	c := testhosts.New(b, 5)
	for i := range c.Hosts {
		c.Shape(i, clusterLinkRate)
	}
	pp := buildPingpong(b)
	var opts []string
	for _, o := range c.SSHOpts() {
		opts = append(opts, "'"+o+"'")
	}
	var hosts []string
	for _, h := range c.Hosts[1:] {
		hosts = append(hosts, h.Addr+":1")
	}
	job := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		all := append([]string{"--ssh-opts", strings.Join(opts, " "), "-n", "4", "--host", strings.Join(hosts, ","), pp}, args...)
		out, err := c.Command(ctx, 0, bin.gorun, all...).CombinedOutput()
		if err != nil {
			b.Fatalf("gorun on host 1: %v\n%s", err, out)
		}
		return string(out)
	}
	// gorun is shipped to the hosts by a first, small job.
	job("-pairs", "half", "-sizes", "8", "-iters", "2", "-bw-iters", "2")
	for b.Loop() {
		var tx0 [5]uint64
		var l0 uint64
		for i := range c.Hosts {
			rx, tx := c.LinkBytes(i)
			tx0[i] = tx
			if i == 0 {
				l0 = rx + tx
			}
		}
		out := job("-pairs", "half", "-sizes", "1048576", "-iters-large", "2", "-bw-iters-large", "8", "-window", "8")
		var sent, launcher uint64
		for i := range c.Hosts {
			rx, tx := c.LinkBytes(i)
			if i == 0 {
				launcher = rx + tx - l0
			} else {
				sent += tx - tx0[i]
			}
		}
		bw := map[string]float64{}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && f[1] == "1048576" {
				bw[f[0]], _ = strconv.ParseFloat(f[3], 64)
			}
		}
		if len(bw) != 2 {
			b.Fatalf("no bandwidth rows for two pairs in:\n%s", out)
		}
		fmt.Printf("cluster pairs: link %.0f MB/s each way; pair 0-2 (hosts 2-4) %.1f MB/s (%.2fx), pair 1-3 (hosts 3-5) %.1f MB/s (%.2fx); "+
			"the ranks' hosts sent %.1f MB, the launcher's link carried %.2f MB (%.1f%%)\n",
			clusterLinkMBps, bw["0-2"], bw["0-2"]/clusterLinkMBps, bw["1-3"], bw["1-3"]/clusterLinkMBps,
			float64(sent)/1e6, float64(launcher)/1e6, 100*float64(launcher)/float64(sent))
		b.ReportMetric(bw["0-2"], "MB/s-pair-2-4")
		b.ReportMetric(bw["1-3"], "MB/s-pair-3-5")
		b.ReportMetric(clusterLinkMBps, "MB/s-link")
		b.ReportMetric(float64(launcher), "B-launcher-link")
		b.ReportMetric(100*float64(launcher)/float64(sent), "%-launcher")
	}
}
