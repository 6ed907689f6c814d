//go:build linux

package mpi_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/gorun-hpc/gorun/internal/shm"
	"github.com/gorun-hpc/gorun/mpi"
)

func init() {
	processCases["suiteshm"] = func(ctx context.Context, c *mpi.Comm) error {
		if err := onRings(c); err != nil {
			return err
		}
		return suite(ctx, c)
	}
}

// TestProcessesShared runs the conformance suite with real OS processes on
// one shared-memory segment, as gorun starts the ranks of one host
// (GORUN_SHM, GORUN_LOCAL_RANK): each checks that every peer takes the
// rings.
func TestProcessesShared(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			path, err := shm.NewPath("")
			if err != nil {
				t.Fatal(err)
			}
			if err := shm.Create(path, n); err != nil {
				t.Fatal(err)
			}
			defer shm.Remove(path)
			runProcesses(t, n, "suiteshm", func(r int) []string {
				return []string{mpi.EnvSharedMemory + "=" + path, mpi.EnvLocalRank + "=" + strconv.Itoa(r), mpi.EnvLocalSize + "=" + strconv.Itoa(n)}
			})
		})
	}
}
