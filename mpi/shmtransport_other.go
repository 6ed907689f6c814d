//go:build !linux

package mpi

// Shared memory needs Linux (internal/shm): elsewhere every frame goes
// through the bus.

type shmHello struct {
	seg   uint64
	local uint32
	pid   uint32
}

const shmHelloLen = 16

func appendShmHello(b []byte, h shmHello) []byte { return append(b, make([]byte, shmHelloLen)...) }

func parseShmHello([]byte) shmHello { return shmHello{} }

func (h shmHello) valid() bool { return true }

func newShmTransport(e *engine) transport { return newNATSTransport(e) }
