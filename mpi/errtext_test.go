package mpi_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestPeerLostSaysWhat: a receive that fails because its source left
// names the source, the tag it waited on and the communicator, and the
// messages from that source with other tags that wait unreceived (the
// usual cause: a tag mismatch); errors.Is still finds ErrPeerLost, and the
// text says "mpi:" once. So do a Probe's and an Mprobe's, and the errors of
// a bad rank or tag.
func TestPeerLostSaysWhat(t *testing.T) {
	var got, probed, mprobed, none, badRank, badTag error
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		if c.Rank() == 0 {
			if err := c.Send(ctx, 1, 5, []byte("sent with tag 5")); err != nil {
				return err
			}
			if err := c.Send(ctx, 1, 5, []byte("and again")); err != nil {
				return err
			}
			if err := c.Send(ctx, 1, 3, []byte("tag 3")); err != nil {
				return err
			}
			return c.Close()
		}
		_, _, got = c.Recv(ctx, 0, 6) // waits on tag 6: rank 0 never sends it
		_, probed = c.Probe(ctx, 0, 6)
		_, _, mprobed = c.Mprobe(ctx, 0, 6)
		// With nothing left from rank 0, the error says only what it waited for.
		for _, tag := range []int{3, 5, 5} {
			if _, _, err := c.Recv(ctx, 0, tag); err != nil {
				return err
			}
		}
		_, _, none = c.Recv(ctx, 0, 6)
		badRank = c.Send(ctx, 7, 0, nil)
		badTag = c.Send(ctx, 0, -3, nil)
		return nil
	})
	var re *mpi.RankError
	if !errors.Is(got, mpi.ErrPeerLost) || !errors.As(got, &re) || re.Rank != 0 || re.Op != "recv" {
		t.Fatalf("%v: want a RankError for rank 0 wrapping ErrPeerLost", got)
	}
	const want = "mpi: recv rank 0: tag 6, comm world: peer closed its world; " +
		"unreceived here from it: a message with tag 3, 2 messages with tag 5 (a tag mismatch?)"
	if got.Error() != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, p := range []struct {
		op  string
		err error
	}{{"probe", probed}, {"mprobe", mprobed}} {
		if want := strings.Replace(want, "recv", p.op, 1); p.err == nil || p.err.Error() != want || !errors.Is(p.err, mpi.ErrPeerLost) {
			t.Errorf("%s: got %q, want %q", p.op, p.err, want)
		}
	}
	if want := "mpi: recv rank 0: tag 6, comm world: peer closed its world"; none == nil || none.Error() != want || !errors.Is(none, mpi.ErrPeerLost) {
		t.Errorf("with nothing waiting: got %q, want %q", none, want)
	}
	if want := "mpi: send: rank 7 not in [0, 2): rank out of range"; badRank == nil || badRank.Error() != want || !errors.Is(badRank, mpi.ErrRank) {
		t.Errorf("got %q, want %q", badRank, want)
	}
	if badTag == nil || strings.Count(badTag.Error(), "mpi:") != 1 || !errors.Is(badTag, mpi.ErrTag) {
		t.Errorf("got %q, want one mpi: prefix, wrapping ErrTag", badTag)
	}
}
