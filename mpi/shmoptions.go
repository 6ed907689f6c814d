package mpi

import (
	"fmt"
	"time"
)

// WithSharedMemory sets whether the ranks of one host exchange their frames
// through the shared-memory segment the launcher made for them (default
// on, where there is one: gorun makes one per host unless --shm=false);
// off, every frame goes through the bus.
func WithSharedMemory(on bool) Option {
	return func(o *Options) error {
		o.SharedMemory = on
		return nil
	}
}

// WithSegment opens the shared-memory segment at path as local rank
// localRank, in place of what the launch contract names (GORUN_SHM and
// GORUN_LOCAL_RANK): for tests and tools that start ranks without gorun,
// such as mpitest.Shared, which makes the segment with the ranks' count.
// The ranks of the job that open the same segment talk through it.
func WithSegment(path string, localRank int) Option {
	return func(o *Options) error {
		if path == "" || localRank < 0 {
			return fmt.Errorf("mpi: WithSegment(%q, %d): want a path and a local rank of at least 0", path, localRank)
		}
		o.segment, o.localRank = path, localRank
		return nil
	}
}

// withShmPolling sets how long the ring poller spins before it sleeps on
// its doorbell, and the longest it sleeps at once (tests).
func withShmPolling(spin, wait time.Duration) Option {
	return func(o *Options) error {
		o.shmSpin, o.shmWait = &spin, wait
		return nil
	}
}
