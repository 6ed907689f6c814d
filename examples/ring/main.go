// Command ring passes a token around a ring of ranks several times: rank 0
// starts it, every rank adds one and passes it on to the next, and after
// the last lap rank 0 checks that it was incremented once per rank per lap.
// It exits non-zero if the count is wrong.
//
//	gorun -n 8 ./examples/ring [-laps 5]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
)

const tag = 7

func main() {
	laps := flag.Int("laps", 5, "times the token goes around the ring")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	world, err := mpi.Init(ctx)
	if err != nil {
		fail(err)
	}
	defer world.Close()

	token, err := ring(ctx, world, *laps)
	if err != nil {
		fail(err)
	}
	if world.Rank() == 0 {
		want := uint64(*laps * world.Size())
		if token != want {
			fmt.Fprintf(os.Stderr, "ring: token is %d after %d laps of %d ranks, want %d\n", token, *laps, world.Size(), want)
			os.Exit(1)
		}
		fmt.Printf("ring: token went %d times around %d ranks: %d, correct\n", *laps, world.Size(), token)
	}
}

// ring runs the laps and returns the token's value as rank 0 last saw it.
func ring(ctx context.Context, c *mpi.Comm, laps int) (uint64, error) {
	next, prev := (c.Rank()+1)%c.Size(), (c.Rank()+c.Size()-1)%c.Size()
	var token uint64
	buf := make([]byte, 8)
	for lap := 0; lap < laps; lap++ {
		if c.Rank() != 0 {
			data, _, err := c.Recv(ctx, prev, tag)
			if err != nil {
				return 0, err
			}
			token = binary.LittleEndian.Uint64(data)
		}
		token++
		binary.LittleEndian.PutUint64(buf, token)
		if err := c.Send(ctx, next, tag, buf); err != nil {
			return 0, err
		}
		if c.Rank() == 0 {
			data, _, err := c.Recv(ctx, prev, tag)
			if err != nil {
				return 0, err
			}
			token = binary.LittleEndian.Uint64(data)
		}
	}
	return token, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ring:", err)
	os.Exit(1)
}
