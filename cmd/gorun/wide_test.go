package main

// Wide jobs: many namespace hosts in one job, each with its own agent and
// its own server of the job's cluster, as in production.

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/testing/testbin"
)

// widePhases are the -v lines that end each phase of a job's start, in
// order, and the names a wide job's table gives them.
var widePhases = []struct{ name, line string }{
	{"logins", "gorun: logins: "},
	{"agents", "gorun: agents started on "},
	{"cluster", "gorun: cluster formed: "},
	{"joined", "gorun: ranks joined: "},
	{"ring", "ring ok"},
	{"end", "gorun: job ended after "},
}

// wideRun is one wide job: when each phase's line came, from gorun's start,
// and what gorun wrote.
type wideRun struct {
	at   map[string]time.Duration
	line map[string]string // the line that ended each phase
	out  []string
	code int
	from time.Time // when gorun started
	wall time.Duration
}

// phases is the run's phase times as one line of a table.
func (w *wideRun) phases() string {
	var b strings.Builder
	for _, p := range widePhases {
		if d, ok := w.at[p.name]; ok {
			fmt.Fprintf(&b, " %s %6.2fs", p.name, d.Seconds())
		} else {
			fmt.Fprintf(&b, " %s      -", p.name)
		}
	}
	return strings.TrimSpace(b.String())
}

// run runs hostprog's check (a ring and an Allreduce) on every slot of
// every host, with -v, and times its phases.
func runWide(tb testing.TB, e *hostsEnv, prog string, n int, extra ...string) *wideRun {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append(append(append([]string(nil), e.ssh...), extra...), "-v", "-n", strconv.Itoa(n), "--hostfile", e.hostfile, prog, "check")
	cmd := exec.CommandContext(ctx, bin.gorun, args...)
	outR, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // one stream, in arrival order
	w := &wideRun{at: map[string]time.Duration{}, line: map[string]string{}}
	start := time.Now()
	w.from = start
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, t := sc.Text(), time.Since(start)
		w.out = append(w.out, line)
		for _, p := range widePhases {
			if _, ok := w.at[p.name]; !ok && strings.HasPrefix(line, p.line) {
				w.at[p.name], w.line[p.name] = t, line
			}
		}
	}
	err = cmd.Wait()
	w.wall = time.Since(start)

	w.code = cmd.ProcessState.ExitCode()
	if err != nil && w.code == 0 {
		w.code = -1
	}
	return w
}

// TestHostsWide: 16 hosts, one rank each, each with its own agent and
// server: a ring and an Allreduce pass, with one ssh login per host, and
// -v names each phase of the start with its time.
func TestHostsWide(t *testing.T) {
	const hosts = 16
	e := newHosts(t, hosts, 1)
	prog := buildHostprog(t)
	logins := countingSSH(t)
	w := runWide(t, e, prog, hosts)
	t.Logf("%d hosts x 1: %v; %s", hosts, w.wall.Round(time.Millisecond), w.phases())
	if w.code != 0 {
		t.Fatalf("exit %d:\n%s", w.code, strings.Join(w.out, "\n"))
	}
	for _, want := range []string{"ring ok", "sum " + strconv.Itoa(hosts*(hosts+1)/2)} {
		if len(withPrefix(w.out, want)) != 1 {
			t.Errorf("no %q line:\n%s", want, strings.Join(w.out, "\n"))
		}
	}
	for _, p := range widePhases {
		if _, ok := w.at[p.name]; !ok {
			t.Errorf("no -v line for phase %s (%q)", p.name, p.line)
		}
	}
	if n := logins(); n != hosts {
		t.Errorf("%d ssh logins for %d hosts, want %d", n, hosts, hosts)
	}
}

// BenchmarkWideJob runs hostprog's check (a ring and an Allreduce) on 8,
// 16, 32 and 64 namespace hosts with one rank each, and on 32 hosts with 4
// each, and prints when each phase of the job's start ended: the first
// job ships gorun to every host (cold), the next finds it there (warm).
// Run it with
//
//	go test -run '^$' -bench WideJob -benchtime 1x ./cmd/gorun/
//
// (root, and the packages of scripts/test-deps.sh).
func BenchmarkWideJob(b *testing.B) {
	for _, c := range []struct{ hosts, slots int }{{8, 1}, {16, 1}, {32, 1}, {64, 1}, {32, 4}} {
		b.Run(fmt.Sprintf("%dx%d", c.hosts, c.slots), func(b *testing.B) {
			e := newHosts(b, c.hosts, c.slots)
			prog := buildHostprog(b)
			n := c.hosts * c.slots
			cold := runWide(b, e, prog, n)
			b.Logf("%dx%d cold: exit %d, %v; %s", c.hosts, c.slots, cold.code, cold.wall.Round(time.Millisecond), cold.phases())
			if cold.code != 0 {
				b.Fatalf("exit %d:\n%s", cold.code, tail(cold.out, 30))
			}
			for b.Loop() {
				w := runWide(b, e, prog, n)
				// The Unix times bound the job in a profile of the machine
				// (perf record -k realtime; perf report --time from,to).
				b.Logf("%dx%d warm: exit %d, %v (Unix %.3f to %.3f); %s", c.hosts, c.slots, w.code, w.wall.Round(time.Millisecond),
					float64(w.from.UnixNano())/1e9, float64(w.from.Add(w.wall).UnixNano())/1e9, w.phases())
				for _, p := range widePhases {
					b.Log(w.line[p.name])
				}
				if w.code != 0 {
					b.Fatalf("exit %d:\n%s", w.code, tail(w.out, 30))
				}
				b.ReportMetric(w.wall.Seconds(), "s/job")
			}
		})
	}
}

// tail is the last n lines of lines, as one text.
func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestHostsWideStartKilled: one host's agent, and with it the host's
// server of the job's cluster, is killed while the job starts (as soon as
// it runs: other hosts may still be getting gorun; and once every agent
// runs, while the servers form their mesh): gorun names that host within
// 5 s, and leaves nothing on any host.
func TestHostsWideStartKilled(t *testing.T) {
	const hosts, victim = 8, 5
	for _, when := range []string{"agent up", "agents started"} {
		t.Run(strings.ReplaceAll(when, " ", "_"), func(t *testing.T) {
			e := newHosts(t, hosts, 1)
			prog := buildHostprog(t)
			j := startJob(t, nil, e.args("-v", "-n", strconv.Itoa(hosts), "--hostfile", e.hostfile, prog, "check")...)
			var agent int
			testbin.WaitFor(t, 2*time.Minute, func() bool {
				if when == "agents started" && !strings.Contains(j.errText(), "gorun: agents started on ") {
					return false
				}
				for _, p := range e.Procs() {
					if p.Host == victim && strings.Contains(p.Cmdline, "__gorun_agent") {
						agent = p.PID
						return true
					}
				}
				return false
			}, "host "+strconv.Itoa(victim)+"'s agent running")
			killed := time.Now()
			if err := syscall.Kill(agent, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			code := j.wait(time.Minute)
			took := j.exitAt.Sub(killed)
			verdict := lastVerdict(j.errText())
			t.Logf("exit %d %v after the kill: %s", code, took.Round(time.Millisecond), verdict)
			if code == 0 {
				t.Fatalf("exit 0 with a host's agent killed:\n%s", j.errText())
			}
			if took > 5*time.Second {
				t.Errorf("gorun exited %v after the kill, want 5 s at most", took.Round(time.Millisecond))
			}
			if !strings.Contains(verdict, "host "+e.Hosts[victim].Addr) {
				t.Errorf("the verdict does not name host %s: %q\n%s", e.Hosts[victim].Addr, verdict, j.errText())
			}
		})
	}
}

// lastVerdict is the last line of gorun's own (not its server's) in stderr.
func lastVerdict(stderr string) string {
	v := ""
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "gorun: ") && !strings.HasPrefix(l, "gorun: nats:") {
			v = l
		}
	}
	return v
}
