// Command hello is the smallest gorun job: every rank joins the job, says
// who and where it is, and checks the world's size against the launch
// environment.
//
//	gorun -n 4 ./examples/hello
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	defer world.Close()

	host, _ := os.Hostname()
	fmt.Printf("hello from rank %d of %d on %s\n", world.Rank(), world.Size(), host)

	want := 1 // outside gorun, a world of one
	if s := os.Getenv("GORUN_SIZE"); s != "" {
		want, _ = strconv.Atoi(s)
	}
	if world.Size() != want || world.Rank() < 0 || world.Rank() >= world.Size() {
		fmt.Fprintf(os.Stderr, "hello: rank %d of %d, but the launcher started %d ranks\n", world.Rank(), world.Size(), want)
		os.Exit(1)
	}
}
