// Command pingpong measures point-to-point latency and bandwidth between
// pairs of ranks, in the manner of the OSU micro-benchmarks (osu_latency and
// osu_bw), and prints a table.
//
// Latency is half the round-trip time of a ping-pong: one rank Sends a
// message and Recvs the same size back, the other Recvs and Sends, for
// -iters round trips after -warmup untimed ones. Bandwidth is one-way: the
// sender posts a window of -window Isends, waits for them all, and then
// for a 1-byte acknowledgement, while the receiver posts a window of Irecvs;
// it is the bytes sent divided by the sender's time, in MB/s (10^6 bytes per
// second). Message sizes double from -min to -max (or are given by -sizes),
// and sizes from 64 KiB on take -iters-large / -bw-iters-large iterations.
//
// The pairs are rank 0 with every other rank in turn (-pairs zero), or ranks
// i and i+n/2 all at the same time (-pairs half, which shows what concurrent
// traffic through the bus does). Every message received is checked byte for
// byte against what was sent (-check=false turns that off); pingpong exits
// non-zero on a wrong or short message.
//
//	gorun -n 2 ./examples/pingpong [-min 8] [-max 4194304] [-iters 100] [-window 8]
//	gorun -n 8 ./examples/pingpong -pairs half -sizes 8,65536,1048576
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/examples/internal/meter"
	"github.com/gorun-hpc/gorun/mpi"
)

// large is the size from which the -iters-large and -bw-iters-large counts
// apply (the default eager limit of mpi: larger messages go by rendezvous).
const large = 64 << 10

// config is what the flags ask for.
type config struct {
	sizes                     []int
	iters, itersLarge, warmup int
	window                    int
	bwIters, bwItersLarge     int
	check                     bool
}

func main() {
	var cfg config
	minSize := flag.Int("min", 8, "smallest message size in bytes")
	maxSize := flag.Int("max", 4<<20, "largest message size in bytes (sizes double from -min)")
	sizes := flag.String("sizes", "", "comma-separated message sizes in bytes, instead of -min and -max")
	flag.IntVar(&cfg.iters, "iters", 100, "timed ping-pong round trips per size")
	flag.IntVar(&cfg.itersLarge, "iters-large", 5, "timed round trips per size from 64 KiB")
	flag.IntVar(&cfg.warmup, "warmup", 2, "untimed round trips or windows before each measurement")
	flag.IntVar(&cfg.window, "window", 8, "messages in flight at once in the bandwidth test")
	flag.IntVar(&cfg.bwIters, "bw-iters", 10, "timed windows per size in the bandwidth test")
	flag.IntVar(&cfg.bwItersLarge, "bw-iters-large", 2, "timed windows per size from 64 KiB")
	flag.BoolVar(&cfg.check, "check", true, "check every received message byte for byte")
	mode := flag.String("pairs", "zero", "zero: rank 0 with each other rank in turn; half: ranks i and i+n/2 at the same time")
	flag.Parse()

	var err error
	cfg.sizes, err = sizeList(*sizes, *minSize, *maxSize)
	if err == nil && (cfg.iters < 1 || cfg.itersLarge < 1 || cfg.warmup < 0 || cfg.window < 1 || cfg.bwIters < 1 || cfg.bwItersLarge < 1) {
		err = fmt.Errorf("-iters, -iters-large, -window, -bw-iters and -bw-iters-large must be at least 1, -warmup at least 0")
	}
	if err == nil && *mode != "zero" && *mode != "half" {
		err = fmt.Errorf("-pairs is %q; want zero or half", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pingpong:", err)
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()
	if world.Size() < 2 {
		fail(fmt.Errorf("needs at least 2 ranks (gorun -n 2 ./examples/pingpong)"))
	}

	rows, checked, err := run(ctx, world, rounds(*mode, world.Size()), cfg)
	if err != nil {
		fail(err)
	}
	all, err := collectives.Gather(ctx, world, 0, rows)
	if err != nil {
		fail(err)
	}
	total, err := collectives.Reduce(ctx, world, 0, []int64{checked}, collectives.Sum)
	if err != nil {
		fail(err)
	}
	if world.Rank() != 0 {
		return
	}
	fmt.Printf("# pingpong: %d ranks, pairs %s; latency: half round trip, %d iterations (%d from 64 KiB); "+
		"bandwidth: window of %d, %d iterations (%d from 64 KiB)\n",
		world.Size(), *mode, cfg.iters, cfg.itersLarge, cfg.window, cfg.bwIters, cfg.bwItersLarge)
	fmt.Printf("# %-7s %10s %14s %18s\n", "pair", "size (B)", "latency (us)", "bandwidth (MB/s)")
	for _, r := range all {
		fmt.Printf("  %-7s %10d %14.2f %18.2f\n", fmt.Sprintf("%d-%d", r.A, r.B), r.Size, r.Latency, r.Bandwidth)
	}
	if cfg.check {
		fmt.Printf("pingpong: OK: %d messages received, every byte checked\n", total[0])
	} else {
		fmt.Printf("pingpong: OK: %d messages received, sizes checked (bytes not checked: -check=false)\n", total[0])
	}
}

// row is one line of the table, measured by the lower rank of a pair.
type row struct {
	A, B      int // the pair
	Size      int
	Latency   float64 // microseconds
	Bandwidth float64 // MB/s
}

// rounds returns the pairs that measure at the same time, round by round.
func rounds(mode string, n int) [][][2]int {
	if mode == "half" {
		var round [][2]int
		for i := range n / 2 {
			round = append(round, [2]int{i, i + n/2})
		}
		return [][][2]int{round}
	}
	var rs [][][2]int
	for p := 1; p < n; p++ {
		rs = append(rs, [][2]int{{0, p}})
	}
	return rs
}

// run takes part in every round and size (idle ranks only in the barrier
// that starts each size), and returns the rows this rank measured and the
// number of messages it received.
func run(ctx context.Context, c *mpi.Comm, rounds [][][2]int, cfg config) ([]row, int64, error) {
	var rows []row
	var received int64
	for _, round := range rounds {
		peer, first := -1, false
		for _, p := range round {
			switch c.Rank() {
			case p[0]:
				peer, first = p[1], true
			case p[1]:
				peer = p[0]
			}
		}
		for _, size := range cfg.sizes {
			if err := collectives.Barrier(ctx, c); err != nil {
				return nil, 0, err
			}
			if peer < 0 {
				continue
			}
			iters, bwIters := cfg.iters, cfg.bwIters
			if size >= large {
				iters, bwIters = cfg.itersLarge, cfg.bwItersLarge
			}
			m := meter.Meter{C: c, Peer: peer, First: first, Size: size, Check: cfg.check}
			lat, n1, err := m.Latency(ctx, cfg.warmup, iters)
			if err != nil {
				return nil, 0, fmt.Errorf("latency with rank %d, %d bytes: %w", peer, size, err)
			}
			bw, n2, err := m.Bandwidth(ctx, cfg.window, cfg.warmup, bwIters)
			if err != nil {
				return nil, 0, fmt.Errorf("bandwidth with rank %d, %d bytes: %w", peer, size, err)
			}
			received += n1 + n2
			if first {
				rows = append(rows, row{A: c.Rank(), B: peer, Size: size,
					Latency: lat.Seconds() * 1e6, Bandwidth: bw / 1e6})
			}
		}
	}
	return rows, received, nil
}

// sizeList returns the sizes of -sizes when given, else the powers of two
// times lo up to hi.
func sizeList(list string, lo, hi int) ([]int, error) {
	if list != "" {
		var sizes []int
		for _, f := range strings.Split(list, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return nil, fmt.Errorf("-sizes: %q is not a size in bytes (a whole number, at least 1)", f)
			}
			sizes = append(sizes, n)
		}
		return sizes, nil
	}
	if lo < 1 || hi < lo {
		return nil, fmt.Errorf("-min is %d and -max %d; want 1 <= -min <= -max", lo, hi)
	}
	var sizes []int
	for s := lo; s <= hi; s *= 2 {
		sizes = append(sizes, s)
		if s > hi/2 {
			break
		}
	}
	return sizes, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pingpong:", err)
	os.Exit(1)
}
