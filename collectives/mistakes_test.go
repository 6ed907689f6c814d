package collectives

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// A mistake case: every rank calls call, and every rank must get an error
// that wraps want and contains every fragment, well before the deadline.
type mistake struct {
	name      string
	n         int
	call      func(ctx context.Context, c *mpi.Comm) error
	want      error
	fragments []string
}

// panicky panics in GobEncode when Boom is set: an element type whose
// encoder has a bug.
type panicky struct{ Boom bool }

func (p panicky) GobEncode() ([]byte, error) {
	if p.Boom {
		panic("panicky: a bug in GobEncode")
	}
	return []byte{0}, nil
}

func (p *panicky) GobDecode([]byte) error { return nil }

func TestMistakes(t *testing.T) {
	nilOr := func(cond bool, xs []int) []int {
		if cond {
			return xs
		}
		return nil
	}
	cases := []mistake{
		{"Bcast/roots differ", 4, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Bcast(ctx, c, min(c.Rank(), 1), []int{1, 2})
			return err
		}, ErrMismatch, []string{"Bcast", "different roots", "rank 0 passed 0", "rank 1 passed 1"}},
		{"Bcast/large data, roots differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Bcast(ctx, c, c.Rank()/2, make([]float64, 100000))
			return err
		}, ErrMismatch, []string{"different roots", "rank 0 passed 0", "rank 2 passed 1"}},
		{"Scatter/roots differ", 5, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Scatter(ctx, c, c.Rank()%2, make([]int, 10))
			return err
		}, ErrMismatch, []string{"Scatter", "rank 0 passed 0", "rank 1 passed 1"}},
		{"Gather/roots differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Gather(ctx, c, c.Rank(), []int{c.Rank()})
			return err
		}, ErrMismatch, []string{"Gather", "rank 0 passed 0", "rank 2 passed 2"}},
		{"Reduce/roots differ", 4, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Reduce(ctx, c, c.Size()-1-c.Rank()/3, []int{1}, Sum)
			return err
		}, ErrMismatch, []string{"Reduce", "rank 3 passed 2", "rank 0 passed 3"}},
		{"Reduce/lengths differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Reduce(ctx, c, 0, make([]float64, 10+c.Rank()), Sum)
			return err
		}, ErrMismatch, []string{"Reduce", "different lengths", "10 on rank 0", "12 on rank 2"}},
		{"Allreduce/lengths differ", 5, func(ctx context.Context, c *mpi.Comm) error {
			l := 10
			if c.Rank() == 3 {
				l = 12
			}
			_, err := Allreduce(ctx, c, make([]float64, l), Sum)
			return err
		}, ErrMismatch, []string{"Allreduce", "10 on rank 0", "12 on rank 3"}},
		{"Allreduce/small and large lengths", 4, func(ctx context.Context, c *mpi.Comm) error {
			l := 10
			if c.Rank() == 1 {
				l = 1 << 20
			}
			_, err := Allreduce(ctx, c, make([]float64, l), Sum)
			return err
		}, ErrMismatch, []string{"10 on rank 0", "1048576 on rank 1"}},
		{"Scan/lengths differ", 4, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Scan(ctx, c, make([]int, 1+c.Rank()%2), Sum)
			return err
		}, ErrMismatch, []string{"Scan", "1 on rank 0", "2 on rank 1"}},
		{"Exscan/lengths differ", 2, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Exscan(ctx, c, make([]int, 1+c.Rank()), Sum)
			return err
		}, ErrMismatch, []string{"Exscan", "1 on rank 0", "2 on rank 1"}},
		{"Alltoall/lengths differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Alltoall(ctx, c, make([]int, 3*(1+c.Rank()/2)))
			return err
		}, ErrMismatch, []string{"Alltoall", "3 on rank 0", "6 on rank 2"}},
		{"Alltoall/length not a multiple", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Alltoall(ctx, c, make([]int, 4))
			return err
		}, ErrCounts, []string{"Alltoall", "len(data) = 4 is not a multiple of the 3 ranks"}},
		{"Scatterv/counts do not add up", 4, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Scatterv(ctx, c, 2, make([]int, 10), nilOr(c.Rank() == 2, []int{3, 3, 3, 0}))
			return err
		}, ErrCounts, []string{"Scatterv", "counts add up to 9, but the root's data has 10 elements"}},
		{"Scatterv/negative count", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Scatterv(ctx, c, 0, make([]int, 2), nilOr(c.Rank() == 0, []int{3, -1, 0}))
			return err
		}, ErrCounts, []string{"counts[1] = -1 is negative"}},
		{"Scatterv/counts not one per rank", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Scatterv(ctx, c, 1, make([]int, 2), []int{1, 1})
			return err
		}, ErrCounts, []string{"root has 2 counts for 3 ranks"}},
		{"Bcast/root out of range everywhere", 4, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Bcast(ctx, c, 4, []int{1})
			return err
		}, mpi.ErrRank, []string{"Bcast", "root 4 not in [0, 4)"}},
		{"Reduce/root out of range on one rank", 5, func(ctx context.Context, c *mpi.Comm) error {
			root := 0
			if c.Rank() == 3 {
				root = -1
			}
			_, err := Reduce(ctx, c, root, []int{1}, Sum)
			return err
		}, mpi.ErrRank, []string{"root -1 not in [0, 5)"}},
		{"Gather/root out of range on one rank", 3, func(ctx context.Context, c *mpi.Comm) error {
			root := 1
			if c.Rank() == 1 {
				root = 3
			}
			_, err := Gather(ctx, c, root, []int{1})
			return err
		}, mpi.ErrRank, []string{"root 3 not in [0, 3)"}},
		{"Allreduce/element types differ", 3, func(ctx context.Context, c *mpi.Comm) error {
			var err error
			if c.Rank() == 1 {
				_, err = Allreduce(ctx, c, []int32{1}, Sum)
			} else {
				_, err = Allreduce(ctx, c, []float32{1}, Sum)
			}
			return err
		}, ErrMismatch, []string{"different element types"}},
		{"Gather/cannot encode", 3, func(ctx context.Context, c *mpi.Comm) error {
			type hidden struct{ x int }
			_, err := Gather(ctx, c, 0, []hidden{{1}})
			return err
		}, ErrEncode, []string{"Gather", "encoding/gob"}},
		{"Allgather/GobEncode panics", 3, func(ctx context.Context, c *mpi.Comm) error {
			_, err := Allgather(ctx, c, []panicky{{Boom: c.Rank() == 1}})
			return err
		}, ErrEncode, []string{"Allgather"}},
		{"different collectives", 2, func(ctx context.Context, c *mpi.Comm) error {
			if c.Rank() == 0 {
				return Barrier(ctx, c)
			}
			_, err := Allgather(ctx, c, []int{1})
			return err
		}, ErrMismatch, []string{"called different collectives", "rank 0 called Barrier", "rank 1 called Allgather"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			mpitest.Run(t, tc.n, func(ctx context.Context, c *mpi.Comm) error {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				err := tc.call(ctx, c)
				if err == nil {
					return errors.New("no error")
				}
				if !errors.Is(err, tc.want) {
					return fmt.Errorf("error does not wrap %q: %w", tc.want, err)
				}
				for _, f := range tc.fragments {
					if !strings.Contains(err.Error(), f) {
						return fmt.Errorf("error does not say %q: %w", f, err)
					}
				}
				if c.Rank() == 0 {
					t.Logf("rank 0: %v", err)
				}
				// The communicator is still usable: the failed call
				// consumed its messages on every rank.
				if tc.name == "different collectives" {
					return nil
				}
				got, err := Allreduce(ctx, c, []int{1}, Sum)
				if err != nil || got[0] != c.Size() {
					return fmt.Errorf("Allreduce after the mistake: %v, %v", got, err)
				}
				return nil
			})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestMistakeMessageNamesReporter checks that the ranks other than the one
// that found a local mistake name it.
func TestMistakeMessageNamesReporter(t *testing.T) {
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		var counts []int
		if c.Rank() == 1 {
			counts = []int{1, 1, 1}
		}
		_, err := Scatterv(ctx, c, 1, make([]int, 4), counts)
		want := "(reported by rank 1)"
		if c.Rank() == 1 {
			if strings.Contains(err.Error(), want) {
				return fmt.Errorf("the root's own error names a reporter: %v", err)
			}
			return nil
		}
		if !strings.Contains(err.Error(), want) {
			return fmt.Errorf("error does not say %q: %v", want, err)
		}
		return nil
	})
}

// TestMismatchedRootsEverySize passes scattered roots to every rooted
// collective at every size: every rank must get ErrMismatch, none may hang
// or panic, whatever the shape of the trees the ranks believe in.
func TestMismatchedRootsEverySize(t *testing.T) {
	calls := map[string]func(ctx context.Context, c *mpi.Comm, root int) error{
		"Bcast": func(ctx context.Context, c *mpi.Comm, root int) error {
			_, err := Bcast(ctx, c, root, []int{1, 2, 3})
			return err
		},
		"Scatter": func(ctx context.Context, c *mpi.Comm, root int) error {
			_, err := Scatter(ctx, c, root, make([]int, 20))
			return err
		},
		"Scatterv": func(ctx context.Context, c *mpi.Comm, root int) error {
			counts := make([]int, c.Size())
			counts[0] = 5
			_, err := Scatterv(ctx, c, root, make([]int, 5), counts)
			return err
		},
		"Gather": func(ctx context.Context, c *mpi.Comm, root int) error {
			_, err := Gather(ctx, c, root, make([]int, c.Rank()))
			return err
		},
		"Gather/large": func(ctx context.Context, c *mpi.Comm, root int) error {
			_, err := Gather(ctx, c, root, make([]int, 3000*(c.Rank()%2)))
			return err
		},
		"Reduce": func(ctx context.Context, c *mpi.Comm, root int) error {
			_, err := Reduce(ctx, c, root, []int{1, 2}, Sum)
			return err
		},
	}
	for _, n := range sizes[1:] {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(ctx context.Context, c *mpi.Comm) error {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				for _, name := range []string{"Bcast", "Scatter", "Scatterv", "Gather", "Gather/large", "Reduce"} {
					for shift := 1; shift < n; shift++ {
						root := 0
						if c.Rank()%2 == 1 {
							root = shift
						}
						err := calls[name](ctx, c, root)
						if !errors.Is(err, ErrMismatch) {
							return fmt.Errorf("%s shift %d: want ErrMismatch, got %v", name, shift, err)
						}
					}
				}
				return nil
			})
		})
	}
}

// TestErrorCodes: every sentinel a rank's local error wraps travels to the
// other ranks as itself.
func TestErrorCodes(t *testing.T) {
	for code := codeRank; code < codeEnd; code++ {
		err := newArgError(kBarrier, code, "detail")
		if got := sentinel(codeOf(err)); got != err.err {
			t.Errorf("code %d: %v travels as %v", code, err.err, got)
		}
	}
}
