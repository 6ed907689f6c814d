// Command survivorprog is a rank program for gorun --on-failure continue:
// one rank dies (SIGKILL, as the OOM killer does) and the others go on.
//
//	survivorprog recv K   every rank but K waits in Recv from K; K dies once they do:
//	                      each says when it learnt (mpi.ErrPeerDied), then closes and exits 0
//	survivorprog map K    pool.Map of 1000 tasks, K dies running its 25th; rank 0 checks
//	                      every result and prints "map: OK"
//	survivorprog slowmap N every rank says "ready", then pool.Map of N tasks of 10 ms (for a
//	                      test that cuts a host off meanwhile); rank 0 prints "map: OK"
//	survivorprog shrink K K dies; the others Agree (rank r's flag: all bits but bit r), Shrink,
//	                      and Allreduce their old ranks on the new communicator, and say what they got
//
// The times are Unix nanoseconds on the machine's clock: the test, on one
// host, computes how long the news of a death took.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/pool"
)

func main() {
	k := -1
	if len(os.Args) > 2 {
		var err error
		if k, err = strconv.Atoi(os.Args[2]); err != nil {
			log.Fatal(err)
		}
	}
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		switch os.Args[1] {
		case "recv":
			return recv(ctx, world, k)
		case "map":
			return mapTasks(ctx, world, k)
		case "shrink":
			return shrink(ctx, world, k)
		case "slowmap":
			return slowMap(ctx, world, k)
		}
		return fmt.Errorf("unknown mode %q", os.Args[1])
	})
}

// die kills this process as the kernel would, without a word to its peers.
func die() {
	fmt.Printf("rank %d dies at %d\n", rankOf(), time.Now().UnixNano())
	os.Stdout.Sync()
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func rankOf() int {
	r, _ := strconv.Atoi(os.Getenv(mpi.EnvRank))
	return r
}

func recv(ctx context.Context, world *mpi.Comm, k int) error {
	if err := collectives.Barrier(ctx, world); err != nil {
		return err
	}
	if world.Rank() == k {
		time.Sleep(300 * time.Millisecond) // the others are in Recv by now
		die()
	}
	_, _, err := world.Recv(ctx, k, 0)
	at := time.Now().UnixNano()
	if !errors.Is(err, mpi.ErrPeerDied) {
		return fmt.Errorf("rank %d: Recv from rank %d: %v, want ErrPeerDied", world.Rank(), k, err)
	}
	fmt.Printf("rank %d learnt at %d: %v\n", world.Rank(), at, err)
	return nil
}

func mapTasks(ctx context.Context, world *mpi.Comm, k int) error {
	var ran atomic.Int64
	var in []int
	if world.Rank() == 0 {
		for i := range 1000 {
			in = append(in, i)
		}
	}
	out, err := pool.Map(ctx, world, in, func(ctx context.Context, x int) (int, error) {
		if world.Rank() == k && ran.Add(1) == 25 {
			die()
		}
		time.Sleep(time.Millisecond)
		return 3 * x, nil
	})
	return checkMap(world, out, err)
}

func shrink(ctx context.Context, world *mpi.Comm, k int) error {
	if err := collectives.Barrier(ctx, world); err != nil {
		return err
	}
	if world.Rank() == k {
		die()
	}
	agreed, err := world.Agree(ctx, ^(1 << world.Rank()))
	if err != nil {
		return err
	}
	s, err := world.Shrink(ctx)
	if err != nil {
		return err
	}
	sum, err := collectives.AllreduceValue(ctx, s, world.Rank(), collectives.Sum)
	if err != nil {
		return err
	}
	fmt.Printf("shrink: rank %d: agreed %d, rank %d of %d, sum of old ranks %d\n", world.Rank(), agreed, s.Rank(), s.Size(), sum)
	return nil
}

func slowMap(ctx context.Context, world *mpi.Comm, tasks int) error {
	if err := collectives.Barrier(ctx, world); err != nil {
		return err
	}
	fmt.Printf("rank %d ready\n", world.Rank())
	var in []int
	if world.Rank() == 0 {
		for i := range tasks {
			in = append(in, i)
		}
	}
	out, err := pool.Map(ctx, world, in, func(ctx context.Context, x int) (int, error) {
		time.Sleep(10 * time.Millisecond)
		return 3 * x, nil
	}, pool.Chunk(1))
	return checkMap(world, out, err)
}

// checkMap checks, on rank 0, that the Map's results are 3x their inputs,
// in order, and says so.
func checkMap(world *mpi.Comm, out []int, err error) error {
	if err != nil || world.Rank() != 0 {
		return err
	}
	for i, v := range out {
		if v != 3*i {
			return fmt.Errorf("map: result %d = %d, want %d", i, v, 3*i)
		}
	}
	fmt.Printf("map: OK: %d results\n", len(out))
	return nil
}
