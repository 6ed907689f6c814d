//go:build linux

package mpi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestSplitSharedOneHost: the ranks of an in-process world are one host.
func TestSplitSharedOneHost(t *testing.T) {
	mpitest.Run(t, 4, func(ctx context.Context, c *mpi.Comm) error {
		s, err := c.SplitShared(ctx)
		if err != nil {
			return err
		}
		if s.Size() != 4 || s.Rank() != c.Rank() {
			return fmt.Errorf("rank %d: SplitShared gave rank %d of %d, want everyone", c.Rank(), s.Rank(), s.Size())
		}
		return nil
	})
}

// TestSplitSharedHosts: ranks spread over hosts, each with a segment of its
// own (as gorun runs several hosts, or namespaces of one machine), split
// into their hosts, in rank order; a rank without a segment is alone.
func TestSplitSharedHosts(t *testing.T) {
	hosts := []int{0, 1, 0, 2, 1, 0, -1}
	ctx, cancel := context.WithTimeout(context.Background(), mpitest.DefaultTimeout)
	defer cancel()
	err := mpitest.WorldHosts(ctx, hosts, func(ctx context.Context, c *mpi.Comm) error {
		s, err := c.SplitShared(ctx)
		if err != nil {
			return err
		}
		var want []int
		for r, h := range hosts {
			if h == hosts[c.Rank()] && (h >= 0 || r == c.Rank()) {
				want = append(want, r)
			}
		}
		// Each member's rank in c, gathered through the new communicator.
		got := make([]int, s.Size())
		for i := range s.Size() {
			b, _, err := s.Sendrecv(ctx, (s.Rank()+i)%s.Size(), 0, []byte{byte(c.Rank())}, (s.Rank()-i+s.Size())%s.Size(), 0)
			if err != nil {
				return err
			}
			got[(s.Rank()-i+s.Size())%s.Size()] = int(b[0])
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("rank %d on host %d: SplitShared holds ranks %v, want %v", c.Rank(), hosts[c.Rank()], got, want)
		}
		// A split of the split: the same hosts again.
		s2, err := s.SplitShared(ctx)
		if err != nil {
			return err
		}
		if s2.Size() != s.Size() || s2.Rank() != s.Rank() {
			return fmt.Errorf("SplitShared of a host's ranks: rank %d of %d, want %d of %d", s2.Rank(), s2.Size(), s.Rank(), s.Size())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHosts: every rank gets the same table, naming for each rank the
// lowest rank on its host; a rank without a segment is alone.
func TestHosts(t *testing.T) {
	hosts := []int{0, 1, 0, 2, 1, 0, -1}
	want := []int{0, 1, 0, 3, 1, 0, 6}
	ctx, cancel := context.WithTimeout(context.Background(), mpitest.DefaultTimeout)
	defer cancel()
	err := mpitest.WorldHosts(ctx, hosts, func(ctx context.Context, c *mpi.Comm) error {
		if got := c.Hosts(); !slices.Equal(got, want) {
			return fmt.Errorf("rank %d: Hosts() = %v, want %v", c.Rank(), got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
