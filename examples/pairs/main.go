// Command pairs measures the latency and bandwidth between every pair of
// ranks (n(n-1)/2 pairs) and prints them as two n x n matrices labelled
// with each rank's host: with one rank per host (gorun --map-by node) it is
// the node-to-node matrix of a cluster.
//
// It measures every pair twice. First one pair at a time (serial), while
// the other ranks wait: each pair's own figures. Then in parallel rounds in
// which every rank is in at most one pair, by the round-robin "circle"
// schedule (n-1 rounds for even n, n for odd n, one rank idle in each):
// what the pairs get when the network is shared. In each matrix the serial
// figure is above the diagonal and the parallel one below it; pairs whose
// parallel figure differs from the serial one by more than -contention
// (20%) are listed, as are the wall times of both schedules.
//
// Latency is half the round trip of a -lat-size ping-pong, over -lat-iters
// round trips; bandwidth is one-way, windows of -bw-window messages of
// -bw-size bytes, each window acknowledged, in MB/s (10^6 bytes per second).
// Every message received is checked byte for byte against what was sent
// (as in examples/pingpong); pairs exits non-zero on a wrong or short one.
// -json prints the same as one JSON object, for scripts:
//
//	{"ranks": 7, "hosts": [...], "rounds": {"serial": 21, "parallel": 7},
//	 "wall_s": {"serial": 1.2, "parallel": 0.5},
//	 "pairs": [{"a": 0, "b": 1, "host_a": "node1", "host_b": "node2",
//	            "latency_us": 61.5, "bandwidth_mbps": 1150.2, "schedule": "serial", "round": 0}, ...],
//	 "contention": [...], "messages": 4242, "ok": true}
//
// bandwidth_mbps is in MB/s, like the text output. Hosts are labelled by
// name (os.Hostname), or with -label addr by their first non-loopback IPv4
// address.
//
//	gorun -n 8 ./examples/pairs [-json] [-lat-size 8] [-lat-iters 100] [-bw-size 1048576] [-bw-window 8] [-bw-iters 4]
//	gorun --hostfile hosts --map-by node ./examples/pairs -label addr
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/examples/internal/meter"
	"github.com/gorun-hpc/gorun/mpi"
)

type config struct {
	latSize, latIters      int
	bwSize, window, bwIter int
	warmup                 int
	contention             float64
}

// Pair is one pair's figures in one schedule, measured by its lower rank.
type Pair struct {
	A         int     `json:"a"`
	B         int     `json:"b"`
	HostA     string  `json:"host_a"`
	HostB     string  `json:"host_b"`
	Latency   float64 `json:"latency_us"`
	Bandwidth float64 `json:"bandwidth_mbps"` // MB/s
	Schedule  string  `json:"schedule"`       // "serial" or "parallel"
	Round     int     `json:"round"`          // the round of its schedule
}

// Change is a pair whose parallel figure differs from its serial one.
type Change struct {
	A        int     `json:"a"`
	B        int     `json:"b"`
	Metric   string  `json:"metric"` // "latency_us" or "bandwidth_mbps"
	Serial   float64 `json:"serial"`
	Parallel float64 `json:"parallel"`
	Change   float64 `json:"change"` // (parallel - serial) / serial
}

// Report is the -json output.
type Report struct {
	Ranks      int                `json:"ranks"`
	Hosts      []string           `json:"hosts"`
	LatSize    int                `json:"lat_size"`
	BwSize     int                `json:"bw_size"`
	Rounds     map[string]int     `json:"rounds"`
	Wall       map[string]float64 `json:"wall_s"`
	Pairs      []Pair             `json:"pairs"`
	Contention []Change           `json:"contention"`
	Messages   int64              `json:"messages"`
	OK         bool               `json:"ok"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.latSize, "lat-size", 8, "message size of the latency ping-pong, in bytes")
	flag.IntVar(&cfg.latIters, "lat-iters", 100, "timed ping-pong round trips per pair")
	flag.IntVar(&cfg.bwSize, "bw-size", 1<<20, "message size of the bandwidth test, in bytes")
	flag.IntVar(&cfg.window, "bw-window", 8, "messages in flight at once in the bandwidth test")
	flag.IntVar(&cfg.bwIter, "bw-iters", 4, "timed windows per pair")
	flag.IntVar(&cfg.warmup, "warmup", 2, "untimed round trips or windows before each measurement")
	flag.Float64Var(&cfg.contention, "contention", 0.2, "list pairs whose parallel figure differs from the serial one by more than this fraction")
	asJSON := flag.Bool("json", false, "print one JSON object instead of tables")
	label := flag.String("label", "name", "label hosts by name (os.Hostname) or addr (first non-loopback IPv4 address)")
	flag.Parse()
	if cfg.latSize < 1 || cfg.latIters < 1 || cfg.bwSize < 1 || cfg.window < 1 || cfg.bwIter < 1 || cfg.warmup < 0 || cfg.contention < 0 {
		usage("-lat-size, -lat-iters, -bw-size, -bw-window and -bw-iters must be at least 1, -warmup and -contention at least 0")
	}
	if *label != "name" && *label != "addr" {
		usage(fmt.Sprintf("-label is %q; want name or addr", *label))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()
	n := world.Size()
	if n < 2 {
		fail(fmt.Errorf("needs at least 2 ranks (gorun -n 2 ./examples/pairs)"))
	}

	host := hostLabel(*label)
	hosts, err := collectives.Gather(ctx, world, 0, []string{host})
	if err != nil {
		fail(err)
	}

	serial := serialRounds(n)
	parallel := circle(n)
	var mine []Pair
	var received int64
	wall := map[string]float64{}
	for _, s := range []struct {
		name   string
		rounds [][][2]int
	}{{"serial", serial}, {"parallel", parallel}} {
		start := time.Now()
		ps, k, err := runSchedule(ctx, world, s.name, s.rounds, cfg)
		if err != nil {
			fail(err)
		}
		if err := collectives.Barrier(ctx, world); err != nil {
			fail(err)
		}
		wall[s.name] = time.Since(start).Seconds()
		mine = append(mine, ps...)
		received += k
	}
	all, err := collectives.Gather(ctx, world, 0, mine)
	if err != nil {
		fail(err)
	}
	total, err := collectives.Reduce(ctx, world, 0, []int64{received}, collectives.Sum)
	if err != nil {
		fail(err)
	}
	if world.Rank() != 0 {
		return
	}
	for i := range all {
		all[i].HostA, all[i].HostB = hosts[all[i].A], hosts[all[i].B]
	}
	rep := Report{Ranks: n, Hosts: hosts, LatSize: cfg.latSize, BwSize: cfg.bwSize,
		Rounds: map[string]int{"serial": len(serial), "parallel": len(parallel)},
		Wall:   wall, Pairs: all, Contention: contention(all, cfg.contention), Messages: total[0], OK: true}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", " ")
		if err := enc.Encode(rep); err != nil {
			fail(err)
		}
		return
	}
	printReport(rep, cfg)
}

// serialRounds is every pair (a < b) in its own round.
func serialRounds(n int) [][][2]int {
	var rs [][][2]int
	for a := range n {
		for b := a + 1; b < n; b++ {
			rs = append(rs, [][2]int{{a, b}})
		}
	}
	return rs
}

// circle is the round-robin schedule of n ranks: rounds in which every rank
// is in at most one pair, and every pair meets once. Rank m-1 stays put and
// the others turn around it (m = n, or n+1 with a dummy rank for odd n,
// whose partner sits the round out): m-1 rounds of m/2 pairs.
func circle(n int) [][][2]int {
	m := n + n%2
	var rs [][][2]int
	for r := range m - 1 {
		var round [][2]int
		add := func(a, b int) {
			if a >= n || b >= n { // the dummy: a bye
				return
			}
			round = append(round, [2]int{min(a, b), max(a, b)})
		}
		add(r, m-1)
		for i := 1; i < m/2; i++ {
			add((r+i)%(m-1), (r-i+m-1)%(m-1))
		}
		rs = append(rs, round)
	}
	return rs
}

// runSchedule takes part in every round of one schedule (ranks not in a
// round wait in the barrier that starts the next), and returns the pairs
// this rank measured (as the lower rank) and the messages it received.
func runSchedule(ctx context.Context, c *mpi.Comm, name string, rounds [][][2]int, cfg config) ([]Pair, int64, error) {
	var out []Pair
	var received int64
	for ri, round := range rounds {
		if err := collectives.Barrier(ctx, c); err != nil {
			return nil, 0, err
		}
		peer, first := -1, false
		for _, p := range round {
			switch c.Rank() {
			case p[0]:
				peer, first = p[1], true
			case p[1]:
				peer = p[0]
			}
		}
		if peer < 0 {
			continue
		}
		lat, k1, err := meter.Meter{C: c, Peer: peer, First: first, Size: cfg.latSize, Check: true}.Latency(ctx, cfg.warmup, cfg.latIters)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: latency with rank %d: %w", name, peer, err)
		}
		bw, k2, err := meter.Meter{C: c, Peer: peer, First: first, Size: cfg.bwSize, Check: true}.Bandwidth(ctx, cfg.window, cfg.warmup, cfg.bwIter)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: bandwidth with rank %d: %w", name, peer, err)
		}
		received += k1 + k2
		if first {
			out = append(out, Pair{A: c.Rank(), B: peer, Latency: lat.Seconds() * 1e6, Bandwidth: bw / 1e6, Schedule: name, Round: ri})
		}
	}
	return out, received, nil
}

// contention lists the pairs whose parallel latency or bandwidth differs
// from the serial one by more than frac.
func contention(all []Pair, frac float64) []Change {
	serial := map[[2]int]Pair{}
	for _, p := range all {
		if p.Schedule == "serial" {
			serial[[2]int{p.A, p.B}] = p
		}
	}
	changes := []Change{}
	for _, p := range all {
		s, ok := serial[[2]int{p.A, p.B}]
		if p.Schedule != "parallel" || !ok {
			continue
		}
		for _, m := range []struct {
			name string
			s, p float64
		}{{"latency_us", s.Latency, p.Latency}, {"bandwidth_mbps", s.Bandwidth, p.Bandwidth}} {
			if m.s > 0 && math.Abs(m.p-m.s)/m.s > frac {
				changes = append(changes, Change{A: p.A, B: p.B, Metric: m.name, Serial: m.s, Parallel: m.p, Change: (m.p - m.s) / m.s})
			}
		}
	}
	slices.SortStableFunc(changes, func(x, y Change) int {
		return cmp.Or(cmp.Compare(x.A, y.A), cmp.Compare(x.B, y.B))
	})
	return changes
}

func printReport(rep Report, cfg config) {
	n := rep.Ranks
	fmt.Printf("# pairs: %d ranks, %d pairs; latency: %d B ping-pong, half round trip, %d round trips; "+
		"bandwidth: %d B messages, window of %d, %d windows\n",
		n, n*(n-1)/2, cfg.latSize, cfg.latIters, cfg.bwSize, cfg.window, cfg.bwIter)
	matrix := func(title string, val func(Pair) float64) {
		cell := map[[2]int]float64{}
		for _, p := range rep.Pairs {
			if p.Schedule == "serial" {
				cell[[2]int{p.A, p.B}] = val(p)
			} else {
				cell[[2]int{p.B, p.A}] = val(p)
			}
		}
		w := 0
		for _, h := range rep.Hosts {
			w = max(w, len(h))
		}
		fmt.Printf("\n%s; above the diagonal one pair at a time, below in parallel rounds\n", title)
		fmt.Printf("%*s", w+5, "")
		for b := range n {
			fmt.Printf(" %9d", b)
		}
		fmt.Println()
		for a := range n {
			fmt.Printf("%3d %-*s ", a, w, rep.Hosts[a])
			for b := range n {
				if a == b {
					fmt.Printf(" %9s", "-")
				} else {
					fmt.Printf(" %9.1f", cell[[2]int{a, b}])
				}
			}
			fmt.Println()
		}
	}
	matrix("latency (us)", func(p Pair) float64 { return p.Latency })
	matrix("bandwidth (MB/s)", func(p Pair) float64 { return p.Bandwidth })
	fmt.Println()
	for _, s := range []string{"serial", "parallel"} {
		k := 0
		for _, p := range rep.Pairs {
			if p.Schedule == s {
				k++
			}
		}
		fmt.Printf("%-8s schedule: %d pairs in %d rounds, wall %.3f s\n", s, k, rep.Rounds[s], rep.Wall[s])
	}
	if len(rep.Contention) == 0 {
		fmt.Printf("contention: no pair's parallel figure differs from its serial one by more than %.0f%%\n", 100*cfg.contention)
	} else {
		fmt.Printf("contention: pairs whose parallel figure differs from the serial one by more than %.0f%%:\n", 100*cfg.contention)
		for _, ch := range rep.Contention {
			fmt.Printf("  %d-%d (%s - %s) %-14s %10.1f -> %10.1f (%+.0f%%)\n", ch.A, ch.B, rep.Hosts[ch.A], rep.Hosts[ch.B],
				ch.Metric, ch.Serial, ch.Parallel, 100*ch.Change)
		}
	}
	fmt.Printf("pairs: OK: %d pairs x 2 schedules measured, %d messages received, every byte checked\n", n*(n-1)/2, rep.Messages)
}

// hostLabel is this rank's host: its name, or its first non-loopback IPv4
// address ("-" if none).
func hostLabel(kind string) string {
	if kind == "name" {
		if h, err := os.Hostname(); err == nil && h != "" {
			return strings.Fields(h)[0]
		}
		return "-"
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return "-"
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "pairs:", msg)
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pairs:", err)
	os.Exit(1)
}
