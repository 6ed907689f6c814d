package testslurm

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestCluster: srun runs a task on each of three nodes, each with its own
// host name and its own PID namespace (each task is far from PID 1's
// neighbours: it cannot see another node's slurmd).
func TestCluster(t *testing.T) {
	c := New(t, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.Client(ctx, "srun", "-N", "3", "--ntasks-per-node=1", "/bin/sh", "-c", `echo "$(hostname) $SLURM_NODEID $(ps -e -o comm= | grep -c slurmd)"`).CombinedOutput()
	if err != nil {
		t.Fatalf("srun: %v\n%s\nslurmctld log:\n%s", err, out, c.Log("slurmctld"))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Strings(lines)
	want := []string{"n1 0 1", "n2 1 1", "n3 2 1"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("srun said %q, want %q", lines, want)
	}
	if ps := c.WaitNodesClean(5 * time.Second); len(ps) != 0 {
		t.Errorf("left on the nodes: %+v", ps)
	}
}
