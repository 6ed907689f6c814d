// Package placement decides where a job's ranks run: the hosts (a
// hostfile, a --host list, or a Slurm allocation's node list) and the rank
// of each slot on them, as Open MPI's mpirun would place them.
//
//	hosts, err := placement.ReadHostfile("hosts")   // "node1 slots=4" per line
//	plan, err := placement.MakePlan(hosts, 8, placement.MapBySlot, false)
//	for rank, p := range plan.Procs {
//		fmt.Println(rank, plan.Hosts[p.Host], p.LocalRank)
//	}
//
// It uses the standard library only; package launcher starts the ranks it
// places.
package placement
