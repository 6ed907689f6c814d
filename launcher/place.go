package launcher

import (
	"fmt"
	"runtime"
)

// place decides where each rank runs, checks the remote hosts and copies
// the program with --copy (ssh.go), and makes a spawner for every host
// with ranks.
func (r *runner) place(j *job) error {
	cfg := &r.cfg
	plan, err := r.plan()
	if err != nil {
		return err
	}
	j.plan = plan
	r.logPaths(plan)
	r.warnUnused(j.ctx, plan)
	rm, err := startRemote(j.ctx, cfg, &j.plan, j.prog.Path, j.info, j.pre, j.cancel, r.logf)
	if err != nil {
		return err
	}
	j.onClose(rm.close)
	var c *jobCluster
	if rm != nil {
		c = rm.cluster
	}
	j.phases = newPhases(r, j, c)
	env := resolveEnv(cfg.Env)
	for i, h := range j.plan.Hosts {
		var procs []Proc
		for _, pr := range j.plan.Procs {
			if pr.Host == i {
				procs = append(procs, pr)
			}
		}
		if len(procs) == 0 {
			continue
		}
		sp, err := newSpawner(h, i, rm)
		if err != nil {
			return err
		}
		spec := &spawnSpec{
			Plan: &j.plan, Host: i, Procs: procs,
			Path: j.prog.Path, Args: j.args, WorkDir: cfg.WorkDir,
			Env: env, Job: j.info, Out: r.out,
			Fail: j.fault, HostLost: j.hostLost,
			Routed: j.phases.routed, Joined: j.phases.hostJoined,
		}
		if procs[0].Rank == 0 {
			spec.Stdin = cfg.Stdin
		}
		if _, local := sp.(*localSpawner); local {
			spec.keeper = j.keeper
		}
		j.specs = append(j.specs, spec)
		j.spawners = append(j.spawners, sp)
	}
	j.phases.hosts = len(j.spawners)
	return nil
}

// plan places the ranks: on cfg.Hosts, or all on this machine (where more
// ranks than CPUs is allowed).
func (r *runner) plan() (Plan, error) {
	cfg := &r.cfg
	hosts := append([]Host(nil), cfg.Hosts...)
	oversub := cfg.Oversubscribe
	if len(hosts) == 0 {
		hosts = []Host{{Name: "localhost", Source: "local"}}
		oversub = true
	}
	for i := range hosts {
		if hosts[i].Slots == 0 && hosts[i].IsLocal() {
			hosts[i].Slots = runtime.NumCPU()
		}
	}
	plan, err := MakePlan(hosts, cfg.N, cfg.MapBy, oversub)
	if err != nil {
		return Plan{}, err
	}
	if len(cfg.Hosts) == 0 {
		if cfg.N > hosts[0].Slots {
			r.logf("%d ranks on %d CPUs: more ranks than CPUs (oversubscribed), allowed on this machine", cfg.N, hosts[0].Slots)
		} else {
			r.logf("%d ranks on %d CPUs", cfg.N, hosts[0].Slots)
		}
	}
	return plan, nil
}

// logPaths says (with -v) how the ranks of each host talk to each other:
// through the host's shared memory, or through the bus.
func (r *runner) logPaths(plan Plan) {
	if !r.cfg.Verbose {
		return
	}
	n := make([]int, len(plan.Hosts))
	for _, p := range plan.Procs {
		n[p.Host]++
	}
	for i, h := range plan.Hosts {
		switch {
		case n[i] < 2:
		case r.cfg.NoSharedMemory:
			r.logf("host %s: its %d ranks talk through the bus (--shm=false)", h, n[i])
		default:
			r.logf("host %s: its %d ranks talk through shared memory, falling back to the bus where a segment cannot be made", h, n[i])
		}
	}
}

// newSpawner returns the spawner for the ranks placed on h (host i of the
// plan): local, or through its agent (spawn_agent.go) with rm from
// startRemote.
func newSpawner(h Host, i int, rm *remote) (spawner, error) {
	if h.IsLocal() {
		return newLocalSpawner(), nil
	}
	if rm == nil || rm.agents[i] == nil {
		return nil, fmt.Errorf("%s: host %s: not prepared for remote ranks", h.Source, h)
	}
	return &agentSpawner{rm: rm, a: rm.agents[i], host: h, idx: i}, nil
}
