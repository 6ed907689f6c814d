package mpi_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// lineOf is "blocked_test.go:N" for the one line of this file that holds
// code.
func lineOf(t *testing.T, code string) string {
	t.Helper()
	b, err := os.ReadFile("blocked_test.go")
	if err != nil {
		t.Fatal(err)
	}
	at := ""
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, code) && !strings.Contains(l, "lineOf(") {
			if at != "" {
				t.Fatalf("%q is on two lines", code)
			}
			at = "blocked_test.go:" + strconv.Itoa(i+1)
		}
	}
	if at == "" {
		t.Fatalf("%q is on no line", code)
	}
	return at
}

// waitBlocked waits until the registry holds a call like want (Op, Comm,
// Peer, Tag and Site), and returns it.
func waitBlocked(ctx context.Context, want blocked.Call) (blocked.Call, error) {
	for {
		cs, _ := blocked.Snapshot()
		for _, c := range cs {
			if c.Op == want.Op && c.Comm == want.Comm && c.Peer == want.Peer && c.Tag == want.Tag && c.Site == want.Site {
				return c, nil
			}
		}
		select {
		case <-ctx.Done():
			return blocked.Call{}, fmt.Errorf("no %+v among the blocked calls %+v", want, cs)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestBlockedCalls: a blocking call that must wait shows in the hang
// report's registry as the call the program made (Recv, Probe, WaitAll,
// a rendezvous Send), with its communicator, peer, tag and the program's
// line, and leaves it when it returns; one that need not wait never shows.
func TestBlockedCalls(t *testing.T) {
	big := make([]byte, 1<<20) // past the eager limit: Send waits for its receiver
	mpitest.Run(t, 3, func(ctx context.Context, c *mpi.Comm) error {
		d, err := c.Dup(ctx)
		if err != nil {
			return err
		}
		switch c.Rank() {
		case 1:
			if _, _, err := d.Recv(ctx, 0, 5); err != nil {
				return err
			}
			if err := c.Send(ctx, 0, 9, big); err != nil {
				return err
			}
		case 2:
			if _, err := c.Probe(ctx, mpi.AnySource, 6); err != nil {
				return err
			}
			if _, _, err := c.Recv(ctx, 0, 6); err != nil {
				return err
			}
			r := c.Irecv(0, 8)
			if err := mpi.WaitAll(ctx, r); err != nil {
				return err
			}
		case 0:
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for _, step := range []struct {
				want blocked.Call
				then func() error
			}{
				{blocked.Call{Op: "Recv", Comm: "world/dup1", Peer: 0, Tag: 5, Site: lineOf(t, "d.Recv(ctx, 0, 5)")}, func() error { return d.Send(ctx, 1, 5, nil) }},
				{blocked.Call{Op: "Probe", Comm: "world", Peer: mpi.AnySource, Tag: 6, Site: lineOf(t, "c.Probe(ctx, mpi.AnySource, 6)")}, func() error { return c.Send(ctx, 2, 6, nil) }},
				{blocked.Call{Op: "WaitAll", Comm: "world", Peer: 0, Tag: 8, Site: lineOf(t, "mpi.WaitAll(ctx, r)")}, func() error { return c.Send(ctx, 2, 8, nil) }},
				{blocked.Call{Op: "Send", Comm: "world", Peer: 0, Tag: 9, Site: lineOf(t, "c.Send(ctx, 0, 9, big)")}, func() error { _, _, err := c.Recv(ctx, 1, 9); return err }},
			} {
				got, err := waitBlocked(wctx, step.want)
				if err != nil {
					return err
				}
				if step.want.Op == "Send" && (got.Bytes != len(big) || !got.Send) {
					return fmt.Errorf("the blocked Send is %+v, want %d bytes", got, len(big))
				}
				if err := step.then(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	// Every call has returned: none is left, and the fast path entered none.
	cs, _ := blocked.Snapshot()
	for _, c := range cs {
		if strings.HasPrefix(c.Site, "blocked_test.go:") {
			t.Errorf("a call is left in the registry: %+v", c)
		}
	}
}
