//go:build linux

package collectives

import (
	"testing"

	"github.com/gorun-hpc/gorun/mpi/mpitest"
)

// TestConformanceShared runs the suite with the ranks on one shared-memory
// segment, as gorun runs the ranks of one host: every frame between them
// goes through the rings, and SendAll to each rank in turn.
func TestConformanceShared(t *testing.T) {
	conformance(t, mpitest.RunShared)
}
