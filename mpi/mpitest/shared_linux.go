//go:build linux

package mpitest

import (
	"context"
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/internal/shm"
	"github.com/gorun-hpc/gorun/mpi"
)

// RunShared is Run with the ranks on one shared-memory segment, as gorun
// runs the ranks of one host: their frames go through its rings, and only
// the start-up and aborts through the in-process server. The segment
// (in /dev/shm, mode 0600) is removed when RunShared returns.
func RunShared(t testing.TB, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) {
	t.Helper()
	ctx, cancel := testContext(t)
	defer cancel()
	if err := WorldShared(ctx, n, fn, opts...); err != nil {
		t.Fatal(err)
	}
}

// WorldShared is World with the ranks on one shared-memory segment (see
// RunShared).
func WorldShared(ctx context.Context, n int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) error {
	if n < 1 {
		return fmt.Errorf("mpitest: %d ranks: need at least 1", n)
	}
	return WorldHosts(ctx, make([]int, n), fn, opts...)
}

// WorldHosts is World with the ranks spread over hosts as gorun would:
// hosts[r] names rank r's host, and the ranks of one host share a segment
// of their own, each as its local rank (its place among them, in rank
// order); between hosts, frames go through the server. A negative host
// gives its rank no segment, as on a host where none could be made.
func WorldHosts(ctx context.Context, hosts []int, fn func(ctx context.Context, c *mpi.Comm) error, opts ...mpi.Option) error {
	n := len(hosts)
	if n < 1 {
		return fmt.Errorf("mpitest: %d ranks: need at least 1", n)
	}
	count := map[int]int{}
	local := make([]int, n)
	for r, h := range hosts {
		local[r] = count[h]
		count[h]++
	}
	paths := map[int]string{}
	defer func() {
		for _, p := range paths {
			shm.Remove(p)
		}
	}()
	for h, k := range count {
		if h < 0 {
			continue
		}
		path, err := shm.NewPath("")
		if err != nil {
			return fmt.Errorf("mpitest: %w", err)
		}
		if err := shm.Create(path, k); err != nil {
			return fmt.Errorf("mpitest: %w", err)
		}
		paths[h] = path
	}
	return world(ctx, n, fn, opts, func(rank int) []mpi.Option {
		if hosts[rank] < 0 {
			return nil
		}
		return []mpi.Option{mpi.WithSegment(paths[hosts[rank]], local[rank])}
	})
}
