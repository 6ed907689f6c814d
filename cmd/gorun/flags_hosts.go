package main

// The multi-host flags: where ranks run (--hostfile, --host, or a Slurm
// allocation), how they are placed, and how gorun reaches other hosts.

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/launcher"
)

// hostFlags holds the multi-host flags until apply turns them into cfg's
// fields.
type hostFlags struct {
	hostfile string
	hosts    string
	sshOpts  string
	routes   string
	launcher string
}

// addHostFlags defines the multi-host flags on fs.
func addHostFlags(fs *flag.FlagSet, cfg *launcher.Config) *hostFlags {
	hf := &hostFlags{sshOpts: os.Getenv("GORUN_SSH_OPTS")}
	fs.StringVar(&hf.hostfile, "hostfile", "", "run on the hosts listed in `FILE` (Open MPI or MPICH format; see hosts.example)")
	fs.StringVar(&hf.hostfile, "machinefile", "", "the same as --hostfile `FILE`")
	fs.StringVar(&hf.hosts, "host", "", "run on `HOSTS`, comma-separated: name, user@name, or name:N for N slots")
	fs.StringVar(&hf.hosts, "H", "", "the same as --host `HOSTS`")
	fs.StringVar(&hf.launcher, "launcher", "", "how ranks on other hosts start: `ssh`, slurm (one srun step inside an allocation)\n"+
		"or local (every rank on this machine, whatever the allocation)\n"+
		"(default: slurm inside a Slurm allocation without --hostfile or --host, else ssh)")
	fs.StringVar(&cfg.MapBy, "map-by", cfg.MapBy, "place ranks by `slot` (fill each host in turn) or node (round robin)")
	fs.BoolVar(&cfg.Oversubscribe, "oversubscribe", false, "allow more ranks than the hosts' slots")
	fs.BoolVar(&cfg.SSH.Copy, "copy", false, "copy the program to every remote host (and remove it afterwards)\n"+
		"instead of expecting it at the same path there")
	fs.StringVar(&hf.sshOpts, "ssh-opts", hf.sshOpts, "extra `OPTIONS` for ssh, as one string (default: $GORUN_SSH_OPTS)")
	fs.DurationVar(&cfg.SSH.ConnectTimeout, "ssh-timeout", 10*time.Second, "give up on a host that does not answer ssh within `DURATION`")
	fs.StringVar(&cfg.SSH.Advertise, "nats-advertise", "", "the `ADDRESS` other hosts' NATS servers reach gorun's at (its cluster routes)\n"+
		"(default: this machine's address on the route to the first remote host)")
	fs.StringVar(&hf.routes, "route-ports", "", "the `LOW-HIGH` port range the job's NATS servers listen on for their cluster routes,\n"+
		"on every host (default: any free port)")
	return hf
}

// apply sets cfg's hosts, launcher and ssh options from the flags, or
// from the Slurm allocation gorun runs in when neither --hostfile nor
// --host is given. nSet says whether -n was given: without it a job in an
// allocation runs SLURM_NTASKS ranks, and one on hosts one rank per slot.
// It returns which launcher it chose and why, for -v.
func (hf *hostFlags) apply(cfg *launcher.Config, nSet bool) (why string, err error) {
	if cfg.SSH.Opts, err = launcher.ParseSSHOpts(hf.sshOpts); err != nil {
		return "", fmt.Errorf("--ssh-opts: %w", err)
	}
	if hf.routes != "" {
		lo, hi, ok := strings.Cut(hf.routes, "-")
		if !ok {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 1 || b < a || b > 65535 {
			return "", fmt.Errorf("--route-ports %q: want LOW-HIGH, two ports with LOW <= HIGH", hf.routes)
		}
		cfg.RoutePorts = [2]int{a, b}
	}
	listed := hf.hostfile != "" || hf.hosts != ""
	alloc := os.Getenv("SLURM_JOB_ID")
	switch hf.launcher {
	case "":
		switch {
		case listed:
			why = "launcher ssh: the hosts are listed (--hostfile or --host)"
		case alloc != "":
			hf.launcher = launcher.LauncherSlurm
			why = "launcher slurm: inside Slurm allocation " + alloc + " (SLURM_JOB_ID), no --hostfile or --host (--launcher overrides)"
		default:
			why = "launcher local: no hosts listed, not inside a Slurm allocation"
		}
	case "local":
		if listed {
			return "", fmt.Errorf("--launcher local runs every rank on this machine: drop --hostfile and --host")
		}
		why = "launcher local (--launcher)"
	case launcher.LauncherSSH:
		why = "launcher ssh (--launcher)"
	case launcher.LauncherSlurm:
		if listed {
			return "", fmt.Errorf("--launcher slurm takes the hosts from the allocation: drop --hostfile and --host")
		}
		if alloc == "" {
			return "", fmt.Errorf("--launcher slurm: not inside a Slurm allocation (SLURM_JOB_ID is not set): run gorun under salloc or sbatch")
		}
		why = "launcher slurm (--launcher), inside Slurm allocation " + alloc
	default:
		return "", fmt.Errorf("--launcher %q: want ssh, slurm or local", hf.launcher)
	}
	if hf.launcher == launcher.LauncherSlurm {
		cfg.Launcher = launcher.LauncherSlurm
	}
	switch {
	case hf.hostfile != "" && hf.hosts != "":
		return "", fmt.Errorf("--hostfile and --host both given: use one")
	case hf.hostfile != "":
		cfg.Hosts, err = launcher.ReadHostfile(hf.hostfile)
	case hf.hosts != "":
		cfg.Hosts, err = launcher.ParseHostList(hf.hosts)
	case hf.launcher == "local":
	default:
		cfg.Hosts, _, err = launcher.SlurmHosts(os.Getenv)
		if err == nil && !nSet && len(cfg.Hosts) > 0 {
			if v := os.Getenv("SLURM_NTASKS"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return "", fmt.Errorf("SLURM_NTASKS=%q: want a positive number", v)
				}
				cfg.N = n
				return why, nil
			}
		}
	}
	if err != nil || len(cfg.Hosts) == 0 || nSet {
		return why, err
	}
	total := 0
	for _, h := range cfg.Hosts {
		if h.Slots == 0 {
			return "", fmt.Errorf("-n not given, and %s (%s) has no slot count: give -n, or slots=N", h, h.Source)
		}
		total += h.Slots
	}
	cfg.N = total
	return why, nil
}

// flagSet reports whether any of names was given on the command line.
func flagSet(fs *flag.FlagSet, names ...string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		for _, n := range names {
			if f.Name == n {
				set = true
			}
		}
	})
	return set
}
