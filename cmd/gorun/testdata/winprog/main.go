// Command winprog: rank 1 exposes a window of 1 MiB (byte i is i%251);
// every other rank Gets all of it and checks it, then all free the window.
package main

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

const size = 1 << 20

func main() {
	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
		n := 0
		if world.Rank() == 1 {
			n = size
		}
		w := mpi.Must(mpi.NewWin[uint8](ctx, world, n))
		for i := range w.Local() {
			w.Local()[i] = uint8(i % 251)
		}
		mpi.Check(w.Fence(ctx))
		if world.Rank() != 1 {
			buf := make([]uint8, size)
			mpi.Check(w.Get(ctx, 1, 0, buf))
			for i, b := range buf {
				if b != uint8(i%251) {
					return fmt.Errorf("winprog: byte %d is %d, want %d", i, b, i%251)
				}
			}
		}
		mpi.Check(w.Fence(ctx))
		return w.Free(ctx)
	})
}
