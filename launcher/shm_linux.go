package launcher

import "github.com/gorun-hpc/gorun/internal/shm"

// newSegment makes the shared-memory segment through which the n ranks of
// this host talk to each other (internal/shm): in /dev/shm, mode 0600, an
// unguessable name that carries this process's pid. It first removes the
// segments this user's earlier jobs left when their gorun or agent was
// SIGKILLed (shm.Sweep: their creator is gone). Each rank opens the
// segment at Init (contract.SharedMemory); removeSegment unlinks it once
// they all have, or when the job ends, whichever comes first.
func newSegment(n int) (string, error) {
	shm.Sweep("")
	path, err := shm.NewPath("")
	if err != nil {
		return "", err
	}
	if err := shm.Create(path, n); err != nil {
		return "", err
	}
	return path, nil
}

// removeSegment unlinks a segment newSegment made; the ranks that mapped it
// keep it until they exit.
func removeSegment(path string) {
	if path != "" {
		shm.Remove(path)
	}
}

// sweepSegments removes the segments of this user whose creator is gone:
// what a keeper does once its gorun or agent died.
func sweepSegments() { shm.Sweep("") }
