//go:build linux

package mpi_test

import (
	"context"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestMulticastAgreed: Multicast answers the same on every rank, on hosts
// with different numbers of ranks too (collectives choose their algorithms
// by it): a rank alone on its host, or without a segment, does not
// multicast where other ranks share a host's rings, as they do not.
func TestMulticastAgreed(t *testing.T) {
	for _, tc := range []struct {
		hosts []int
		want  bool
	}{
		{[]int{0, 0, 1}, false},  // rank 2 alone on its host
		{[]int{0, -1, 0}, false}, // rank 1 without a segment
		{[]int{0, 0, 0}, false},
		{[]int{0, 1, 2}, true}, // no two ranks share a host
	} {
		answers := make([]bool, len(tc.hosts))
		ctx, cancel := context.WithTimeout(context.Background(), mpitest.DefaultTimeout)
		err := mpitest.WorldHosts(ctx, tc.hosts, func(ctx context.Context, c *mpi.Comm) error {
			answers[c.Rank()] = c.Multicast()
			return nil
		}, mpi.WithMulticast(true))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for r, a := range answers {
			if a != tc.want {
				t.Errorf("hosts %v: rank %d's Multicast() = %v, want %v", tc.hosts, r, a, tc.want)
			}
		}
	}
}
