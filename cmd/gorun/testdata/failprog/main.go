// Command failprog is a rank program in the README's shape (Init, a
// deferred Close, log.Fatal on error) that fails on one rank while the
// others are in a collective, as a user's program does:
//
//	failprog panic RANK   RANK panics ("boom on rank RANK")
//	failprog fatal RANK   RANK calls log.Fatal ("rank RANK: fatal input")
//	failprog error RANK   RANK's run returns an error ("rank RANK: bad input"), which main gives to log.Fatal
//
// Every rank first does a few Allreduces, so that all have joined.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	if err := run(os.Args[1], os.Args[2]); err != nil {
		log.Fatal(err)
	}
}

func run(mode, arg string) error {
	bad, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	if err != nil {
		return err
	}
	defer world.Close()
	for i := range 20 {
		if i == 3 && world.Rank() == bad {
			switch mode {
			case "panic":
				panic(fmt.Sprintf("boom on rank %d", bad))
			case "fatal":
				log.Fatalf("rank %d: fatal input", bad)
			case "error":
				return errors.New("rank " + arg + ": bad input")
			}
		}
		if _, err := collectives.Allreduce(ctx, world, []int{world.Rank()}, collectives.Sum); err != nil {
			return err
		}
	}
	return nil
}
