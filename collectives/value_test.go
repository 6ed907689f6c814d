package collectives_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

type valuePoint struct {
	Rank int
	Name string
}

// checkValues runs every one-value-per-rank collective on c with root and
// checks each result against what it must be.
func checkValues(ctx context.Context, c *mpi.Comm, root int) error {
	n, r := c.Size(), c.Rank()
	sum, err := collectives.AllreduceValue(ctx, c, float64(r+1), collectives.Sum)
	if err != nil || sum != float64(n*(n+1)/2) {
		return fmt.Errorf("AllreduceValue: %v, %v; want %d", sum, err, n*(n+1)/2)
	}
	largest, err := collectives.ReduceValue(ctx, c, root, int64(r*r), collectives.Max)
	want := int64(0)
	if r == root {
		want = int64((n - 1) * (n - 1))
	}
	if err != nil || largest != want {
		return fmt.Errorf("ReduceValue: %v, %v; want %d", largest, err, want)
	}
	mine := valuePoint{}
	if r == root {
		mine = valuePoint{root, "root"}
	}
	got, err := collectives.BcastValue(ctx, c, root, mine)
	if err != nil || got != (valuePoint{root, "root"}) {
		return fmt.Errorf("BcastValue: %+v, %v", got, err)
	}
	all := make([]valuePoint, n)
	for i := range all {
		all[i] = valuePoint{i, fmt.Sprint("p", i)}
	}
	gathered, err := collectives.GatherValues(ctx, c, root, all[r])
	if err != nil {
		return fmt.Errorf("GatherValues: %w", err)
	}
	if r == root && !reflect.DeepEqual(gathered, all) || r != root && gathered != nil {
		return fmt.Errorf("GatherValues: %+v", gathered)
	}
	everyone, err := collectives.AllgatherValues(ctx, c, all[r])
	if err != nil || !reflect.DeepEqual(everyone, all) {
		return fmt.Errorf("AllgatherValues: %+v, %v", everyone, err)
	}
	var vs []valuePoint
	if r == root {
		vs = all
	}
	part, err := collectives.ScatterValues(ctx, c, root, vs)
	if err != nil || part != all[r] {
		return fmt.Errorf("ScatterValues: %+v, %v; want %+v", part, err, all[r])
	}
	nums, err := collectives.AllgatherValues(ctx, c, uint8(r))
	if err != nil || len(nums) != n || nums[n-1] != uint8(n-1) {
		return fmt.Errorf("AllgatherValues of numbers: %v, %v", nums, err)
	}
	return nil
}

// TestValueCollectives: each one-value collective, with numbers and with a
// struct (gob), on every root of worlds of 1 to 5 ranks and on the halves
// of a Split.
func TestValueCollectives(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		for root := range n {
			t.Run(fmt.Sprintf("n=%d/root=%d", n, root), func(t *testing.T) {
				mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
					if err := checkValues(ctx, c, root); err != nil {
						return err
					}
					half, err := c.Split(ctx, c.Rank()%2, c.Rank())
					if err != nil {
						return err
					}
					return checkValues(ctx, half, root%half.Size())
				})
			})
		}
	}
}

// TestScatterValuesCount: root with one value too few or too many makes
// every rank fail with ErrCounts, naming both numbers (and, elsewhere, the
// rank that found it), rather than hang or hand out a wrong share; the
// communicator stays usable.
func TestScatterValuesCount(t *testing.T) {
	for _, have := range []int{2, 4, 0} {
		t.Run(fmt.Sprintf("values=%d", have), func(t *testing.T) {
			mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
				var vs []int
				if c.Rank() == 1 {
					vs = make([]int, have)
				}
				_, err := collectives.ScatterValues(ctx, c, 1, vs)
				if !errors.Is(err, collectives.ErrCounts) {
					return fmt.Errorf("err %v, want ErrCounts", err)
				}
				if msg := fmt.Sprintf("root 1 has %d values for 3 ranks", have); !strings.Contains(err.Error(), msg) {
					return fmt.Errorf("err %q does not say %q", err, msg)
				}
				if c.Rank() != 1 && !strings.Contains(err.Error(), "reported by rank 1") {
					return fmt.Errorf("err %q does not name rank 1", err)
				}
				v, err := collectives.AllreduceValue(ctx, c, 1, collectives.Sum)
				if err != nil || v != 3 {
					return fmt.Errorf("after the error: %v, %v", v, err)
				}
				return nil
			})
		})
	}
}

// TestValueMistakes: a root out of range and ScatterValues against Scatter
// are errors on every rank.
func TestValueMistakes(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		if _, err := collectives.BcastValue(ctx, c, 3, 1.0); !errors.Is(err, mpi.ErrRank) {
			return fmt.Errorf("BcastValue root 3: %v, want ErrRank", err)
		}
		var err error
		if c.Rank() == 2 {
			_, err = collectives.Scatter(ctx, c, 0, []int{1, 2, 3})
		} else {
			_, err = collectives.ScatterValues(ctx, c, 0, []int{1, 2, 3})
		}
		if !errors.Is(err, collectives.ErrMismatch) || !strings.Contains(err.Error(), "ScatterValues") {
			return fmt.Errorf("Scatter against ScatterValues: %v, want ErrMismatch naming ScatterValues", err)
		}
		return nil
	})
}
