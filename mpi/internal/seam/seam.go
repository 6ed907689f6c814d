// Package seam is the one place where package mpi opens itself to its own
// test support (mpi/mpitest) for what no exported API should offer.
// Package mpi sets every hook at start-up; nothing else sets them.
package seam

import "github.com/gorun-hpc/gorun/mpi/internal/memnet"

// MemoryNetwork returns an mpi.Option that makes Init join its job over n,
// the in-memory network, in place of NATS.
var MemoryNetwork func(n *memnet.Network) any
