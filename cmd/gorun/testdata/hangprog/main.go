// Command hangprog is the rank program of the hang report's tests: jobs
// that hang in known ways, at known lines (each marked with a comment the
// tests look for); and of the statistics' test, in which each rank knows
// what it sends and receives.
//
//	deadlock        ranks 0 and 1 each Recv from the other first (tag 7)
//	barrier         every rank but the last enters Barrier; the last waits in Recv(src=0)
//	compute SECS    rank 0 computes for SECS seconds, then sends to every rank, which waits in Recv(src=0)
//	closed          rank 1 closes and exits 0; rank 0 waits in Recv(src=1), which fails (ErrPeerLost)
//	traffic         rank r sends r+1 messages of 1000(r+1) bytes (Send) and one of 100000 (Isend) to
//	                rank r+1 (mod n), then one SendAll of 10 bytes; it receives the same from the others
//	ring K          K rounds of Sendrecv around the ring (to r+1, from r-1), one Isend/Recv round
//	                of 100 KB, then a Barrier
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rank, size := world.Rank(), world.Size()
	fail := func(err error) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "rank %d: %v\n", rank, err)
			os.Exit(1)
		}
	}
	switch os.Args[1] {
	case "deadlock":
		if rank < 2 {
			_, _, err := world.Recv(ctx, 1-rank, 7) // site:deadlock
			fail(err)
		}
	case "barrier":
		if rank < size-1 {
			fail(collectives.Barrier(ctx, world)) // site:barrier
		} else {
			_, _, err := world.Recv(ctx, 0, 0) // site:barrier-recv
			fail(err)
		}
	case "compute":
		if rank == 0 {
			secs, _ := strconv.Atoi(os.Args[2])
			spin(time.Duration(secs) * time.Second)
			for r := 1; r < size; r++ {
				fail(world.Send(ctx, r, 0, []byte("done")))
			}
		} else {
			_, _, err := world.Recv(ctx, 0, 0) // site:compute-recv
			fail(err)
		}
	case "closed":
		if rank == 1 {
			fail(world.Close())
			return
		}
		if rank == 0 {
			_, _, err := world.Recv(ctx, 1, 0) // site:closed-recv
			fail(err)
		}
	case "traffic":
		next, prev := (rank+1)%size, (rank+size-1)%size
		for range rank + 1 {
			fail(world.Send(ctx, next, 1, make([]byte, 1000*(rank+1))))
		}
		big := world.Isend(next, 1, make([]byte, 100000)) // a ring of blocking rendezvous sends would deadlock
		fail(world.SendAll(ctx, 2, make([]byte, 10)))
		for range prev + 2 {
			_, _, err := world.Recv(ctx, prev, 1)
			fail(err)
		}
		for r := range size {
			if r != rank {
				_, _, err := world.Recv(ctx, r, 2)
				fail(err)
			}
		}
		_, err := big.Wait(ctx)
		fail(err)
	case "ring":
		k, _ := strconv.Atoi(os.Args[2])
		next, prev := (rank+1)%size, (rank+size-1)%size
		for i := range k {
			_, _, err := world.Sendrecv(ctx, next, 1, []byte{byte(i)}, prev, 1)
			fail(err)
		}
		r := world.Isend(next, 2, make([]byte, 100000))
		_, _, err := world.Recv(ctx, prev, 2)
		fail(err)
		_, err = r.Wait(ctx)
		fail(err)
		fail(collectives.Barrier(ctx, world))
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
	fail(world.Close())
}

// spin keeps a core busy for d, in no gorun call.
func spin(d time.Duration) {
	x := 0
	for t0 := time.Now(); time.Since(t0) < d; {
		for i := range 1 << 20 {
			x ^= i
		}
	}
	if x == 42 {
		fmt.Println()
	}
}
