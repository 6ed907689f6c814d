// Command hostprog is the rank program of gorun's multi-host tests. Every
// rank prints "where RANK LOCAL_RANK LOCAL_SIZE SIZE PID ADDR" on stdout
// (ADDR: its host's first non-loopback IPv4 address), then does what its
// mode says:
//
//	check   join the job, pass a token around the ring, Allreduce the ranks'
//	        numbers (and an mpi-only reduction to rank 0); rank 0 prints
//	        "ring ok" and "sum S" and exits 1 if anything is wrong
//	stdin   rank 0 copies its standard input to stdout, line by line, as "in LINE"
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	fmt.Printf("where %s %s %s %s %d %s\n", os.Getenv("GORUN_RANK"), os.Getenv("GORUN_LOCAL_RANK"),
		os.Getenv("GORUN_LOCAL_SIZE"), os.Getenv("GORUN_SIZE"), os.Getpid(), addr())
	mode := "check"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "check":
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, "hostprog:", err)
			os.Exit(1)
		}
	case "stdin":
		if os.Getenv("GORUN_RANK") == "0" {
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				fmt.Println("in", sc.Text())
			}
			fmt.Println("in EOF")
		}
	default:
		fmt.Fprintln(os.Stderr, "hostprog: unknown mode", mode)
		os.Exit(2)
	}
}

// addr is this host's first non-loopback IPv4 address, "-" if none.
func addr() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "-"
}

func check() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		return err
	}
	defer world.Close()
	rank, size := world.Rank(), world.Size()

	// A ring: each rank sends its number to the next and adds what it got.
	next, prev := (rank+1)%size, (rank+size-1)%size
	buf := binary.LittleEndian.AppendUint64(nil, uint64(rank))
	got, _, err := world.Sendrecv(ctx, next, 1, buf, prev, 1)
	if err != nil {
		return fmt.Errorf("ring: %w", err)
	}
	if v := binary.LittleEndian.Uint64(got); int(v) != prev {
		return fmt.Errorf("ring: got %d from rank %d", v, prev)
	}

	// A reduction with mpi alone: everyone sends rank+1 to rank 0.
	want := size * (size + 1) / 2
	if rank != 0 {
		if err := mpi.SendSlice(ctx, world, 0, 2, []int64{int64(rank + 1)}); err != nil {
			return err
		}
	} else {
		sum := 1
		for src := 1; src < size; src++ {
			v, _, err := mpi.RecvSlice[int64](ctx, world, src, 2)
			if err != nil {
				return err
			}
			sum += int(v[0])
		}
		if sum != want {
			return fmt.Errorf("mpi reduction: %d, want %d", sum, want)
		}
		fmt.Println("ring ok")
	}

	// The same with collectives.Allreduce, on every rank.
	all, err := collectives.Allreduce(ctx, world, []int{rank + 1}, collectives.Sum)
	if err != nil {
		return fmt.Errorf("allreduce: %w", err)
	}
	if all[0] != want {
		return fmt.Errorf("allreduce: %d, want %d", all[0], want)
	}
	if rank == 0 {
		fmt.Println("sum", all[0])
	}
	return nil
}
