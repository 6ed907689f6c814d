package mpi_test

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// A struct travels with encoding/gob; no encoding code of your own.
func ExampleSendValue() {
	type job struct {
		Name  string
		Steps int
		Grid  []float64
	}
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.SendValue(ctx, c, 1, 0, job{Name: "heat", Steps: 100, Grid: []float64{0, 0.5, 1}})
		}
		j, st, err := mpi.RecvValue[job](ctx, c, 0, 0)
		fmt.Printf("rank 1 got %+v from rank %d\n", j, st.Source)
		return err
	})
	// Output: rank 1 got {Name:heat Steps:100 Grid:[0 0.5 1]} from rank 0
}

// Numbers and slices of numbers travel as raw little-endian bytes.
func ExampleRecvValue() {
	mpitest.World(context.Background(), 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			if err := mpi.SendValue(ctx, c, 1, 0, 3.5); err != nil {
				return err
			}
			return mpi.SendValue(ctx, c, 1, 0, []int32{1, 2, 3})
		}
		x, st, err := mpi.RecvValue[float64](ctx, c, 0, 0)
		if err != nil {
			return err
		}
		fmt.Println(x, st.Count, "bytes")
		xs, st, err := mpi.RecvValue[[]int32](ctx, c, 0, 0)
		fmt.Println(xs, st.Count, "bytes")
		return err
	})
	// Output:
	// 3.5 8 bytes
	// [1 2 3] 12 bytes
}

func ExampleAppendValue() {
	b := []byte{0xaa} // a header of your own
	b, _ = mpi.AppendValue(b, uint32(1))
	fmt.Println(b)
	v, _ := mpi.DecodeValue[uint32](b[1:])
	fmt.Println(v)
	// Output:
	// [170 1 0 0 0]
	// 1
}

func ExampleDecodeValue() {
	type point struct{ X, Y int }
	b, err := mpi.AppendValue(nil, []point{{1, 2}, {3, 4}})
	if err != nil {
		panic(err)
	}
	ps, err := mpi.DecodeValue[[]point](b)
	fmt.Println(ps, err)
	// Output: [{1 2} {3 4}] <nil>
}
