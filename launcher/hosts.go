package launcher

import (
	"io"

	"github.com/gorun-hpc/gorun/launcher/placement"
)

// Placement lives in package placement; these names stay here for the
// programs that used them from launcher.
type (
	// Host is placement.Host: one machine of a job and how many ranks it
	// may take.
	Host = placement.Host
	// Proc is placement.Proc: where one rank runs.
	Proc = placement.Proc
	// Plan is placement.Plan: where every rank of a job runs.
	Plan = placement.Plan
)

// Map-by policies accepted by MakePlan (placement's).
const (
	MapBySlot = placement.MapBySlot // fill a host's slots before moving to the next (Open MPI's default)
	MapByNode = placement.MapByNode // one rank per host in turn (round robin)
)

// MakePlan is placement.MakePlan: it places n ranks on hosts.
func MakePlan(hosts []Host, n int, mapBy string, oversubscribe bool) (Plan, error) {
	return placement.MakePlan(hosts, n, mapBy, oversubscribe)
}

// ReadHostfile is placement.ReadHostfile: the hosts of the hostfile at path.
func ReadHostfile(path string) ([]Host, error) { return placement.ReadHostfile(path) }

// ParseHostfile is placement.ParseHostfile: the hosts of a hostfile read
// from r; name is the file's name in errors.
func ParseHostfile(r io.Reader, name string) ([]Host, error) {
	return placement.ParseHostfile(r, name)
}

// ParseHostList is placement.ParseHostList: the hosts of a --host list.
func ParseHostList(s string) ([]Host, error) { return placement.ParseHostList(s) }

// SlurmHosts is placement.SlurmHosts: the hosts of the Slurm allocation
// getenv describes; ok is false outside one.
func SlurmHosts(getenv func(string) string) (hosts []Host, ok bool, err error) {
	return placement.SlurmHosts(getenv)
}

// ExpandNodelist is placement.ExpandNodelist: the node names of a Slurm
// node list such as "n[01-03],gpu2".
func ExpandNodelist(s string) ([]string, error) { return placement.ExpandNodelist(s) }

// ParseTasksPerNode is placement.ParseTasksPerNode: the counts of a Slurm
// SLURM_TASKS_PER_NODE value such as "2(x3),1".
func ParseTasksPerNode(s string) ([]int, error) { return placement.ParseTasksPerNode(s) }
