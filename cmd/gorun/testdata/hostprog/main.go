// Command hostprog is the rank program of gorun's multi-host tests. Every
// rank prints "where RANK LOCAL_RANK LOCAL_SIZE SIZE PID ADDR HOSTNAME" on
// stdout (ADDR: its host's first non-loopback IPv4 address), then does
// what its mode says:
//
//	check   join the job, pass a token around the ring, Allreduce the ranks'
//	        numbers (and an mpi-only reduction to rank 0); rank 0 prints
//	        "ring ok" and "sum S" and exits 1 if anything is wrong
//	stdin   rank 0 copies its standard input to stdout, line by line, as "in LINE"
//	burst K right after Init, every rank sends K small (eager) messages to
//	        every other rank at once, and checks it gets K from each, in
//	        order; each rank prints "burst ok"
//	exchange MB  ranks 0 and 1 send each other MB/2 messages of 1 MiB, each
//	        filled with Pattern; each checks what it got and prints "exchange ok"
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	hostname, _ := os.Hostname()
	fmt.Printf("where %s %s %s %s %d %s %s\n", os.Getenv("GORUN_RANK"), os.Getenv("GORUN_LOCAL_RANK"),
		os.Getenv("GORUN_LOCAL_SIZE"), os.Getenv("GORUN_SIZE"), os.Getpid(), addr(), hostname)
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
	case "burst", "exchange":
		n := 0
		if len(os.Args) > 2 {
			n, _ = strconv.Atoi(os.Args[2])
		}
		f := burst
		if mode == "exchange" {
			f = exchange
		}
		if err := f(n); err != nil {
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

	// A Bcast past what travels with the call's check (60 KiB): its
	// algorithm, which every rank must choose alike, depends on how the
	// ranks share hosts (on hosts with different numbers of ranks too).
	data := make([]byte, 100_000)
	if rank == 0 {
		for i := range data {
			data[i] = byte(i * 7)
		}
	}
	data, err = collectives.Bcast(ctx, world, 0, data)
	if err != nil {
		return fmt.Errorf("bcast: %w", err)
	}
	for i, b := range data {
		if b != byte(i*7) {
			return fmt.Errorf("bcast: byte %d is %d, want %d", i, b, byte(i*7))
		}
	}
	return nil
}

// Pattern is the 64 bytes every exchange message repeats (a test looks for
// it in a packet capture).
const Pattern = "gorun-payload-pattern:0123456789abcdefghijklmnopqrstuvwxyz!@#$%&"

func burst(k int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		return err
	}
	defer world.Close()
	rank, size := world.Rank(), world.Size()
	var reqs []*mpi.Request
	for i := range k {
		for dst := range size {
			if dst != rank {
				reqs = append(reqs, world.Isend(dst, 7, binary.LittleEndian.AppendUint64(nil, uint64(i))))
			}
		}
	}
	// Receive with a short deadline: a lost message is never coming.
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	for src := range size {
		if src == rank {
			continue
		}
		for i := range k {
			got, _, err := world.Recv(rctx, src, 7)
			if err != nil {
				return fmt.Errorf("rank %d: message %d of %d from rank %d: %w", rank, i, k, src, err)
			}
			if v := binary.LittleEndian.Uint64(got); int(v) != i {
				return fmt.Errorf("rank %d: message %d from rank %d is %d", rank, i, src, v)
			}
		}
	}
	if err := mpi.WaitAll(ctx, reqs...); err != nil {
		return err
	}
	if err := collectives.Barrier(ctx, world); err != nil {
		return err
	}
	fmt.Println("burst ok")
	return nil
}

func exchange(mb int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		return err
	}
	defer world.Close()
	if world.Size() != 2 {
		return fmt.Errorf("exchange needs 2 ranks, not %d", world.Size())
	}
	msg := bytes.Repeat([]byte(Pattern), (1<<20)/len(Pattern))
	peer := 1 - world.Rank()
	for i := range mb / 2 {
		var got []byte
		if world.Rank() == 0 {
			err = world.Send(ctx, peer, 1, msg)
			if err == nil {
				got, _, err = world.Recv(ctx, peer, 1)
			}
		} else {
			got, _, err = world.Recv(ctx, peer, 1)
			if err == nil {
				err = world.Send(ctx, peer, 1, msg)
			}
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("message %d differs", i)
		}
	}
	fmt.Println("exchange ok")
	return nil
}
