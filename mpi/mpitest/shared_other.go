//go:build !linux

package mpitest

import (
	"context"
	"errors"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
)

// RunShared is Run with the ranks on one shared-memory segment; shared
// memory needs Linux: elsewhere it fails t.
func RunShared(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
	t.Helper()
	t.Fatal(WorldShared(context.Background(), n, fn, opts...))
}

// WorldShared is World with the ranks on one shared-memory segment; shared
// memory needs Linux: elsewhere it returns an error.
func WorldShared(ctx context.Context, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) error {
	return errors.New("mpitest: shared memory needs Linux")
}

// WorldHosts is World with the ranks spread over hosts, each host's on a
// shared-memory segment; shared memory needs Linux: elsewhere it returns
// an error.
func WorldHosts(ctx context.Context, hosts []int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) error {
	return errors.New("mpitest: shared memory needs Linux")
}
