// Package launcher starts and supervises the ranks of a job: it is gorun's
// engine, for a program that wants to launch jobs itself.
//
//	cfg := launcher.DefaultConfig()
//	cfg.N = 4
//	err := launcher.Run(ctx, cfg, "./examples/sum")
//	os.Exit(launcher.ExitCode(err)) // 0, or the failing rank's status
//
// Run builds the program if it is Go source (PrepareProgram), opens the
// job's bus (an embedded nats-server, one per host in a cluster, or an
// existing server with Config.NATSURL), places the ranks (Config.Hosts:
// ReadHostfile, ParseHostList or SlurmHosts; MakePlan), starts them with
// the launch contract's environment, here and through an agent on every
// other host (over ssh, or srun inside a Slurm allocation), and waits. The
// first rank that fails ends the job; Run's *ExitError names it, with its
// exit status and last words. A program that runs jobs on other hosts must
// let its binary become an agent, as gorun's main does:
//
//	if len(os.Args) > 1 && os.Args[1] == launcher.AgentArg {
//		os.Exit(launcher.RunAgent(os.Stdin, os.Stdout, os.Stderr))
//	}
//
// # Where things are
//
// Run's phases are in run.go (prepare, openBus, place, supervise); the bus
// in bus.go (its servers in package internal/bus); placement in package
// placement (its names kept here in hosts.go) and place.go; one host's ranks (start, stop, reap,
// control socket, sweep, keeper) in hostranks.go, control.go, reap_linux.go
// and keeper.go; the agent's two ends in agent.go (the agent) and
// spawn_agent.go (gorun's side), started by ssh (agentconn.go, remote.go)
// or srun (spawn_slurm.go, slurmcall.go), speaking agentwire.go's frames;
// the watch over a running job in watch.go, and its report in exit.go,
// output.go and hang.go. A job's start on many hosts (the cluster formed
// and checked, the ranks let go, each phase timed) is in cluster.go and
// phases.go; the heartbeats between gorun and its agents in heartbeat.go.
package launcher
