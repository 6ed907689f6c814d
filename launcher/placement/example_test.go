package placement_test

import (
	"fmt"
	"strings"

	"github.com/gorun-hpc/gorun/launcher/placement"
)

func ExampleParseHostfile() {
	hosts, err := placement.ParseHostfile(strings.NewReader(`
node1 slots=2        # Open MPI
alice@node2:4        # MPICH Hydra
`), "hosts")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range hosts {
		fmt.Println(h, h.Slots, h.Source)
	}
	_, err = placement.ParseHostfile(strings.NewReader("node1 slots=abc\n"), "hosts")
	fmt.Println(err)
	// Output:
	// node1 2 hosts:2
	// alice@node2 4 hosts:3
	// hosts:1: slots=abc: not a positive integer
}

func ExampleParseHostList() {
	hosts, _ := placement.ParseHostList("a,b:2,a")
	for _, h := range hosts {
		fmt.Println(h.Name, h.Slots)
	}
	// Output:
	// a 2
	// b 2
}

func ExampleMakePlan() {
	hosts := []placement.Host{{Name: "a", Slots: 2}, {Name: "b", Slots: 2}}
	for _, mapBy := range []string{placement.MapBySlot, placement.MapByNode} {
		p, _ := placement.MakePlan(hosts, 3, mapBy, false)
		fmt.Print(mapBy, ":")
		for _, pr := range p.Procs {
			fmt.Printf(" %d@%s(%d/%d)", pr.Rank, p.Hosts[pr.Host].Name, pr.LocalRank, pr.LocalSize)
		}
		fmt.Println()
	}
	_, err := placement.MakePlan(hosts, 5, placement.MapBySlot, false)
	fmt.Println(err)
	// Output:
	// slot: 0@a(0/2) 1@a(1/2) 2@b(0/1)
	// node: 0@a(0/2) 1@b(0/1) 2@a(1/2)
	// 5 ranks but only 4 slots on 2 hosts; add hosts or slots, or pass --oversubscribe
}

func ExampleExpandNodelist() {
	nodes, _ := placement.ExpandNodelist("node[01-03,07],gpu1")
	fmt.Println(nodes)
	// Output: [node01 node02 node03 node07 gpu1]
}

func ExampleParseTasksPerNode() {
	counts, _ := placement.ParseTasksPerNode("2(x3),1")
	fmt.Println(counts)
	// Output: [2 2 2 1]
}

func ExampleSlurmHosts() {
	env := map[string]string{"SLURM_JOB_NODELIST": "n[1-2]", "SLURM_TASKS_PER_NODE": "4,2"}
	hosts, ok, _ := placement.SlurmHosts(func(k string) string { return env[k] })
	fmt.Println(ok)
	for _, h := range hosts {
		fmt.Println(h.Name, h.Slots)
	}
	// Output:
	// true
	// n1 4
	// n2 2
}

func ExampleReadHostfile() {
	hosts, err := placement.ReadHostfile("../../hosts.example")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range hosts[:3] {
		fmt.Printf("%s slots=%d max_slots=%d\n", h, h.Slots, h.MaxSlots)
	}
	// Output:
	// node01 slots=0 max_slots=0
	// node02 slots=4 max_slots=0
	// node03 slots=4 max_slots=6
}

func ExampleHost_IsLocal() {
	for _, name := range []string{"localhost", "127.0.0.1", "node-elsewhere.invalid"} {
		fmt.Println(name, placement.Host{Name: name}.IsLocal())
	}
	// Output:
	// localhost true
	// 127.0.0.1 true
	// node-elsewhere.invalid false
}

func ExampleHost_String() {
	fmt.Println(placement.Host{Name: "node1", User: "alice"})
	// Output: alice@node1
}
