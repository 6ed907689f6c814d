package mpi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/mpi"
	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// noCtx is a nil context.Context, in a variable so that nothing flags the
// literal nil.
var noCtx context.Context

// nilCtxCalls are mpi's calls that take a ctx, each given a nil one, on
// communicator c. Each returns the call's error.
var nilCtxCalls = []struct {
	name string
	call func(c *mpi.Comm) error
}{
	{"Send", func(c *mpi.Comm) error { return c.Send(noCtx, 1-c.Rank(), 0, []byte("x")) }},
	{"Recv", func(c *mpi.Comm) error { _, _, err := c.Recv(noCtx, 1-c.Rank(), 0); return err }},
	{"SendAll", func(c *mpi.Comm) error { return c.SendAll(noCtx, 0, []byte("x")) }},
	{"RecvInto", func(c *mpi.Comm) error { _, err := c.RecvInto(noCtx, 1-c.Rank(), 0, make([]byte, 8)); return err }},
	{"Sendrecv", func(c *mpi.Comm) error {
		_, _, err := c.Sendrecv(noCtx, 1-c.Rank(), 0, []byte("x"), 1-c.Rank(), 0)
		return err
	}},
	{"Probe", func(c *mpi.Comm) error { _, err := c.Probe(noCtx, 1-c.Rank(), 0); return err }},
	{"Dup", func(c *mpi.Comm) error { _, err := c.Dup(noCtx); return err }},
	{"Split", func(c *mpi.Comm) error { _, err := c.Split(noCtx, 0, 0); return err }},
	{"Request.Wait", func(c *mpi.Comm) error {
		r := c.Irecv(1-c.Rank(), 0)
		defer r.Cancel()
		_, err := r.Wait(noCtx)
		return err
	}},
	{"Request.Wait/failed", func(c *mpi.Comm) error { _, err := c.Isend(-5, 0, nil).Wait(noCtx); return err }},
	{"WaitAll", func(c *mpi.Comm) error {
		r := c.Irecv(1-c.Rank(), 0)
		defer r.Cancel()
		return mpi.WaitAll(noCtx, r)
	}},
	{"WaitAll/none", func(c *mpi.Comm) error { return mpi.WaitAll(noCtx) }},
	{"WaitAny", func(c *mpi.Comm) error {
		r := c.Irecv(1-c.Rank(), 0)
		defer r.Cancel()
		_, _, err := mpi.WaitAny(noCtx, r)
		return err
	}},
	{"SendSlice", func(c *mpi.Comm) error { return mpi.SendSlice(noCtx, c, 1-c.Rank(), 0, []float64{1}) }},
	{"RecvSlice", func(c *mpi.Comm) error { _, _, err := mpi.RecvSlice[float64](noCtx, c, 1-c.Rank(), 0); return err }},
	{"SendValue", func(c *mpi.Comm) error { return mpi.SendValue(noCtx, c, 1-c.Rank(), 0, "x") }},
	{"RecvValue", func(c *mpi.Comm) error { _, _, err := mpi.RecvValue[string](noCtx, c, 1-c.Rank(), 0); return err }},
}

// TestNilContext: every call of mpi that takes a ctx, given a nil one,
// returns an error wrapping ErrNilContext (no panic), and leaves the
// communicator usable: the next exchange and Split on it work, on both
// ranks.
func TestNilContext(t *testing.T) {
	mpitest.Run(t, 2, func(ctx context.Context, c *mpi.Comm) error {
		for i, tc := range nilCtxCalls {
			err := tc.call(c)
			if !errors.Is(err, mpi.ErrNilContext) {
				return fmt.Errorf("%s with a nil ctx: %v, want an error wrapping ErrNilContext", tc.name, err)
			}
			peer := 1 - c.Rank()
			got, _, err := c.Sendrecv(ctx, peer, i+1, []byte(tc.name), peer, i+1)
			if err != nil || !bytes.Equal(got, []byte(tc.name)) {
				return fmt.Errorf("after %s with a nil ctx: Sendrecv got %q, %v", tc.name, got, err)
			}
			d, err := c.Split(ctx, 0, 0)
			if err != nil || d.Size() != 2 {
				return fmt.Errorf("after %s with a nil ctx: Split: %v", tc.name, err)
			}
		}
		return nil
	})
	if _, err := mpi.Init(noCtx); !errors.Is(err, mpi.ErrNilContext) {
		t.Errorf("Init with a nil ctx: %v, want an error wrapping ErrNilContext", err)
	}
}
