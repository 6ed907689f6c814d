package main

// The hang report: where every rank is blocked, and the verdict, printed
// when --timeout fires, on SIGUSR1, and by itself after --hang-report.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/trace/tracecheck"
)

// hangprog is testdata/hangprog, built once by the first test that needs it.
var hangprog lazyProg

func buildHangprog(t *testing.T) string { return hangprog.build(t, "hangprog", "./testdata/hangprog") }

// site is "main.go:N" for the line of hangprog marked "site:mark".
func site(t *testing.T, mark string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/hangprog/main.go")
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(l, "// site:"+mark) {
			return fmt.Sprintf("main.go:%d", i+1)
		}
	}
	t.Fatalf("no line marked site:%s in hangprog", mark)
	return ""
}

// wantLines fails t unless every pattern matches some line of gorun's
// stderr, in order.
func wantLines(t *testing.T, stderr string, patterns ...string) {
	t.Helper()
	lines := gorunLines(stderr)
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for i < len(lines) && !re.MatchString(lines[i]) {
			i++
		}
		if i == len(lines) {
			t.Fatalf("no line matching %q (in order) in gorun's stderr:\n%s", p, stderr)
		}
		i++
	}
}

// TestHangReportTimeout: two ranks that both Recv from each other first,
// with --timeout: gorun prints each rank's call, peer, tag and line, and
// the deadlock, then stops the job (exit 124).
func TestHangReportTimeout(t *testing.T) {
	prog := buildHangprog(t)
	code, _, stderr := runJob(t, time.Minute, "-n", "2", "--timeout", "3s", prog, "deadlock")
	if code != 124 {
		t.Fatalf("exit %d, want 124; stderr:\n%s", code, stderr)
	}
	at := regexp.QuoteMeta(site(t, "deadlock"))
	wantLines(t, stderr,
		`^gorun: the job ran for 3s \(--timeout\); where each rank is:$`,
		`^gorun:   rank 0: Recv\(src=1, tag=7, comm=world\) blocked [0-9.]+s at `+at+`$`,
		`^gorun:   rank 1: Recv\(src=0, tag=7, comm=world\) blocked [0-9.]+s at `+at+`$`,
		`^gorun: deadlock: rank 0 waits for rank 1, rank 1 waits for rank 0$`,
		`^gorun: job timed out after 3s \(--timeout\); every rank stopped$`)
}

// TestHangReportSignal: SIGUSR1 prints the report, and the job goes on.
func TestHangReportSignal(t *testing.T) {
	prog := buildHangprog(t)
	j := startJob(t, nil, "-v", "-n", "2", "--hang-report", "0", prog, "deadlock")
	j.waitStderr("gorun: starting 2 ranks", 30*time.Second) // SIGUSR1 is gorun's from here
	// Both ranks in Recv: ask until the report shows them there.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(j.errText(), "deadlock: rank 0 waits for rank 1") {
		if time.Now().After(deadline) {
			t.Fatalf("no deadlock in the reports after 30s:\n%s", j.errText())
		}
		j.cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(500 * time.Millisecond)
	}
	at := regexp.QuoteMeta(site(t, "deadlock"))
	wantLines(t, j.errText(),
		`^gorun: got SIGUSR1 \(the job goes on\); where each rank is:$`,
		`^gorun:   rank 0: Recv\(src=1, tag=7, comm=world\) blocked [0-9.]+s at `+at+`$`,
		`^gorun:   rank 1: Recv\(src=0, tag=7, comm=world\) blocked [0-9.]+s at `+at+`$`,
		`^gorun: deadlock: rank 0 waits for rank 1, rank 1 waits for rank 0$`)
	select {
	case <-j.done:
		t.Fatalf("gorun exited (%d) after SIGUSR1:\n%s", j.code, j.errText())
	case <-time.After(time.Second):
	}
	j.cmd.Process.Signal(syscall.SIGINT)
	if code := j.wait(30 * time.Second); code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130:\n%s", code, j.errText())
	}
}

// TestHangReportBarrier: three ranks in Barrier while the fourth waits in
// Recv(src=0): the verdict names the Barrier, the ranks in it, and rank
// 3's call.
func TestHangReportBarrier(t *testing.T) {
	prog := buildHangprog(t)
	code, _, stderr := runJob(t, time.Minute, "-n", "4", "--timeout", "4s", prog, "barrier")
	if code != 124 {
		t.Fatalf("exit %d, want 124; stderr:\n%s", code, stderr)
	}
	b, r := regexp.QuoteMeta(site(t, "barrier")), regexp.QuoteMeta(site(t, "barrier-recv"))
	wantLines(t, stderr,
		`^gorun:   rank 0: Barrier\(world\) blocked [0-9.]+s at `+b+`$`,
		`^gorun:   rank 1: Barrier\(world\) blocked [0-9.]+s at `+b+`$`,
		`^gorun:   rank 2: Barrier\(world\) blocked [0-9.]+s at `+b+`$`,
		`^gorun:   rank 3: Recv\(src=0, tag=0, comm=world\) blocked [0-9.]+s at `+r+`$`,
		`^gorun: deadlock: rank 0 waits for rank 3, rank 3 waits for rank 0$`,
		`^gorun: Barrier\(world\) \(call 1\): ranks 0-2 in it, rank 3 not: rank 3 is in Recv\(src=0, tag=0, comm=world\) at `+r+`$`)
	// The README shows this very report: its lines must be true too.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sample, _ := strings.Cut(string(readme), "$ gorun -n 4 --timeout 3s ./hangprog barrier\n")
	sample, _, _ = strings.Cut(sample, "\n\n")
	sample = strings.ReplaceAll(sample, "\n    ", "\n")
	wantLines(t, strings.TrimPrefix(sample, "    "),
		`^gorun:   rank 0: Barrier\(world\) blocked [0-9.]+s at `+b+`$`,
		`^gorun:   rank 3: Recv\(src=0, tag=0, comm=world\) blocked [0-9.]+s at `+r+`$`,
		`^gorun: Barrier\(world\) \(call 1\): ranks 0-2 in it, rank 3 not: rank 3 is in Recv\(src=0, tag=0, comm=world\) at `+r+`$`)
	if strings.Contains(stderr, "Recv(src=any") || strings.Contains(stderr, "comm=world/dup") {
		t.Errorf("the Barrier's own messages show in the report:\n%s", stderr)
	}
}

// TestPeerLostJob: a rank waiting for one that closed and exited cleanly
// gets ErrPeerLost at once (naming the rank), not a hang; its failure ends
// the job.
func TestPeerLostJob(t *testing.T) {
	prog := buildHangprog(t)
	start := time.Now()
	code, _, stderr := runJob(t, time.Minute, "-n", "3", "--timeout", "30s", prog, "closed")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "rank 0: mpi: recv rank 1: tag 0, comm world: peer closed its world") {
		t.Errorf("no ErrPeerLost naming rank 1 in rank 0's error:\n%s", stderr)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the job took %v", took)
	}
}

// TestHangReportAuto: with --hang-report, a deadlocked job's report comes
// by itself, once, and the job goes on (to its --timeout here).
func TestHangReportAuto(t *testing.T) {
	prog := buildHangprog(t)
	code, _, stderr := runJob(t, time.Minute, "-n", "2", "--hang-report", "1", "--timeout", "6s", prog, "deadlock")
	if code != 124 {
		t.Fatalf("exit %d, want 124; stderr:\n%s", code, stderr)
	}
	wantLines(t, stderr,
		`^gorun: every running rank has been blocked for [0-9]+s \(--hang-report\); where each rank is:$`,
		`^gorun: deadlock: rank 0 waits for rank 1, rank 1 waits for rank 0$`,
		`^gorun: the job ran for 6s \(--timeout\); where each rank is:$`)
	if n := strings.Count(stderr, "(--hang-report)"); n != 1 {
		t.Errorf("%d automatic reports, want 1:\n%s", n, stderr)
	}
}

// TestHangReportCompute: rank 0 computes, outside gorun's calls, for
// longer than --hang-report, while the others wait for it in Recv: no
// report comes by itself, one asked for says it is not a deadlock, and the
// job ends well.
func TestHangReportCompute(t *testing.T) {
	prog := buildHangprog(t)
	j := startJob(t, nil, "-v", "-n", "3", "--hang-report", "1", prog, "compute", "6")
	j.waitStderr("gorun: starting 3 ranks", 30*time.Second)
	time.Sleep(3 * time.Second)
	j.cmd.Process.Signal(syscall.SIGUSR1)
	if code := j.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, j.errText())
	}
	stderr := j.errText()
	wantLines(t, stderr,
		`^gorun: got SIGUSR1 \(the job goes on\); where each rank is:$`,
		`^gorun:   rank 0: running, in no gorun call \(computing\)$`,
		`^gorun:   rank 1: Recv\(src=0, tag=0, comm=world\) blocked [0-9.]+s at `+regexp.QuoteMeta(site(t, "compute-recv"))+`$`,
		`^gorun: not a deadlock: rank 0 still running outside gorun's calls`)
	if strings.Contains(stderr, "gorun: deadlock") || strings.Contains(stderr, "(--hang-report)") {
		t.Errorf("a computing rank reported as a deadlock:\n%s", stderr)
	}
}

// TestHangReportLongCompute is the case as a user meets it: rank 0
// computes for 40 s, past the default --hang-report of 30 s, while the
// others wait in Recv; nothing is reported.
func TestHangReportLongCompute(t *testing.T) {
	skipShort(t)
	if testing.Short() {
		t.Skip("40 s; TestHangReportCompute covers it in short")
	}
	t.Parallel()
	prog := buildHangprog(t)
	code, _, stderr := runJob(t, 2*time.Minute, "-n", "3", prog, "compute", "40")
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "deadlock") || strings.Contains(stderr, "where each rank is") {
		t.Errorf("a computing rank reported:\n%s", stderr)
	}
}

// TestHangReportHosts: the report reaches ranks on other hosts, through
// their agents, and names each rank's host; so does the question for
// their traces when the job is stopped.
func TestHangReportHosts(t *testing.T) {
	e := newHosts(t, 2, 2)
	prog := buildHangprog(t)
	path := filepath.Join(t.TempDir(), "trace.json")
	j := startJob(t, nil, e.args("-n", "4", "--map-by", "node", "--hostfile", e.hostfile, "--timeout", "8s", "--trace", path, prog, "barrier")...)
	if code := j.wait(2 * time.Minute); code != 124 {
		t.Fatalf("exit %d, want 124; stderr:\n%s", code, j.errText())
	}
	h0, h1 := regexp.QuoteMeta(e.Hosts[0].Addr), regexp.QuoteMeta(e.Hosts[1].Addr)
	b, r := regexp.QuoteMeta(site(t, "barrier")), regexp.QuoteMeta(site(t, "barrier-recv"))
	wantLines(t, j.errText(),
		`^gorun:   rank 0 \(`+h0+`\): Barrier\(world\) blocked [0-9.]+s at `+b+`$`,
		`^gorun:   rank 1 \(`+h1+`\): Barrier\(world\) blocked [0-9.]+s at `+b+`$`,
		`^gorun:   rank 2 \(`+h0+`\): Barrier\(world\) blocked [0-9.]+s at `+b+`$`,
		`^gorun:   rank 3 \(`+h1+`\): Recv\(src=0, tag=0, comm=world\) blocked [0-9.]+s at `+r+`$`,
		`^gorun: deadlock: rank 0 waits for rank 3, rank 3 waits for rank 0$`)
	unfinished := map[int]string{}
	for _, ev := range readTrace(t, path).TraceEvents {
		if ev.Ph == "X" && ev.Args["unfinished"] != nil {
			unfinished[ev.Pid-1] = ev.Name
		}
	}
	if want := map[int]string{0: "Barrier", 1: "Barrier", 2: "Barrier", 3: "Recv"}; !reflect.DeepEqual(unfinished, want) {
		t.Errorf("unfinished calls in the trace %v, want %v", unfinished, want)
	}
	e.assertClean(t, 5*time.Second)
}

// TestStats: --stats prints for every rank the messages and bytes it sent
// and received, its largest message, and its calls, as the program knows
// them.
func TestStats(t *testing.T) {
	prog := buildHangprog(t)
	const n = 3
	code, _, stderr := runJob(t, time.Minute, "-n", strconv.Itoa(n), "--stats", prog, "traffic")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	rows := map[int][5]int64{}
	calls := map[int]string{}
	for _, l := range gorunLines(stderr) {
		var r int
		var v [5]int64
		if k, _ := fmt.Sscanf(l, "gorun: %d %d %d %d %d %d", &r, &v[0], &v[1], &v[2], &v[3], &v[4]); k == 6 {
			rows[r] = v
		}
		if k, _ := fmt.Sscanf(l, "gorun:   rank %d calls:", &r); k == 1 {
			calls[r] = l
		}
	}
	for r := range n {
		p := (r + n - 1) % n
		sent := int64(r+1)*1000*int64(r+1) + 100000 + (n-1)*10
		recv := int64(p+1)*1000*int64(p+1) + 100000 + (n-1)*10
		want := [5]int64{int64(r+2) + n - 1, sent, int64(p+2) + n - 1, recv, 100000}
		if rows[r] != want {
			t.Errorf("rank %d: sent msgs, bytes, recv msgs, bytes, largest = %v, want %v\n%s", r, rows[r], want, stderr)
		}
		for _, c := range []string{fmt.Sprintf("Recv %d ", p+2+n-1), fmt.Sprintf("Send %d ", r+1), "SendAll 1 ", "Wait 1 "} {
			if !strings.Contains(calls[r], c) {
				t.Errorf("rank %d's calls %q: no %q", r, calls[r], c)
			}
		}
	}
}

// traceFile is the part of a --trace file the tests read.
type traceFile struct {
	TraceEvents []struct {
		Name string         `json:"name"`
		Ph   string         `json:"ph"`
		ID   uint64         `json:"id"` // a number: Perfetto reads a string id as hexadecimal
		Pid  int            `json:"pid"`
		Ts   float64        `json:"ts"`
		Dur  float64        `json:"dur"`
		Args map[string]any `json:"args"`
	} `json:"traceEvents"`
	OtherData struct {
		Dropped map[string]uint64 `json:"dropped_events"`
		Missing map[string]string `json:"missing_ranks"`
		NoFlow  map[int]int       `json:"messages_without_flow"`
	} `json:"otherData"`
}

func readTrace(t *testing.T, path string) traceFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Perfetto's JSON importer would read it: every call a slice, every
	// flow end inside its call's slice, numeric flow ids, no pid 0.
	if _, err := tracecheck.Check(b); err != nil {
		t.Errorf("Perfetto would not read the trace as promised: %v", err)
	}
	var tf traceFile
	if err := json.Unmarshal(b, &tf); err != nil {
		t.Fatalf("the trace is not valid JSON: %v", err)
	}
	return tf
}

// TestTrace: --trace on a ring of 8 ranks writes a trace-event file with a
// named track per rank, an event per call (a collective as one event), and
// exactly one flow from each send to its receive, on the next rank.
func TestTrace(t *testing.T) {
	prog := buildHangprog(t)
	const n, rounds = 8, 3
	path := filepath.Join(t.TempDir(), "trace.json")
	if code, _, stderr := runJob(t, 2*time.Minute, "-n", strconv.Itoa(n), "--trace", path, prog, "ring", strconv.Itoa(rounds)); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	tf := readTrace(t, path)
	names := map[int]string{}
	calls := map[int]map[string]int{}
	starts := map[uint64][]int{} // flow id -> the ranks of its starts
	ends := map[uint64][]int{}
	for _, e := range tf.TraceEvents {
		e.Pid-- // pid is rank+1
		switch e.Ph {
		case "M":
			if e.Name == "process_name" {
				names[e.Pid], _ = e.Args["name"].(string)
			}
		case "X":
			if calls[e.Pid] == nil {
				calls[e.Pid] = map[string]int{}
			}
			calls[e.Pid][e.Name]++
			if e.Ts < 0 || e.Dur < 0 {
				t.Errorf("rank %d: %s at %v for %v", e.Pid, e.Name, e.Ts, e.Dur)
			}
		case "s":
			starts[e.ID] = append(starts[e.ID], e.Pid)
		case "f":
			ends[e.ID] = append(ends[e.ID], e.Pid)
		default:
			t.Errorf("an event of phase %q: %+v", e.Ph, e)
		}
	}
	host, _ := os.Hostname()
	for r := range n {
		if names[r] != fmt.Sprintf("rank %d on %s", r, host) {
			t.Errorf("rank %d's track is named %q", r, names[r])
		}
		want := map[string]int{"Sendrecv": rounds, "Isend": 1, "Recv": 1, "Wait": 1, "Barrier": 1}
		if !reflect.DeepEqual(calls[r], want) {
			t.Errorf("rank %d's calls %v, want %v", r, calls[r], want)
		}
	}
	// Each rank sends rounds+1 messages to the next: one flow each.
	if len(starts) != n*(rounds+1) {
		t.Errorf("%d flows, want %d", len(starts), n*(rounds+1))
	}
	for id, from := range starts {
		to := ends[id]
		if len(from) != 1 || len(to) != 1 || to[0] != (from[0]+1)%n {
			t.Errorf("flow %d: starts on ranks %v, ends on ranks %v; want one each, on the next rank", id, from, to)
		}
	}
	for id := range ends {
		if _, ok := starts[id]; !ok {
			t.Errorf("flow %d ends on rank %v and starts nowhere", id, ends[id])
		}
	}
	if len(tf.OtherData.Dropped) != 0 || len(tf.OtherData.Missing) != 0 || len(tf.OtherData.NoFlow) != 0 {
		t.Errorf("dropped %v, missing %v, messages without a flow %v; want none", tf.OtherData.Dropped, tf.OtherData.Missing, tf.OtherData.NoFlow)
	}

	// A ring too small for the job keeps the last events, and says how
	// many it dropped.
	if code, _, stderr := runJob(t, time.Minute, "-n", "2", "--trace", path, "--trace-size", "4", prog, "ring", "5"); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	tf = readTrace(t, path)
	if len(tf.OtherData.Dropped) != 2 {
		t.Errorf("dropped %v, want both ranks' count", tf.OtherData.Dropped)
	}
	perRank := map[int]int{}
	for _, e := range tf.TraceEvents {
		if e.Ph != "M" {
			perRank[e.Pid-1]++
		}
	}
	// A message whose other end the ring dropped is drawn with no flow.
	for r, k := range tf.OtherData.NoFlow {
		perRank[r] += k
	}
	if perRank[0] != 4 || perRank[1] != 4 {
		t.Errorf("events kept %v, want 4 a rank", perRank)
	}
}

// TestTraceHosts: ranks on other hosts give their traces through their
// agents; each track names its host, and flows cross hosts.
func TestTraceHosts(t *testing.T) {
	e := newHosts(t, 2, 2)
	prog := buildHangprog(t)
	path := filepath.Join(t.TempDir(), "trace.json")
	j := startJob(t, nil, e.args("-n", "4", "--map-by", "node", "--hostfile", e.hostfile, "--trace", path, prog, "ring", "2")...)
	if code := j.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
	}
	tf := readTrace(t, path)
	flows := map[uint64]int{}
	for _, ev := range tf.TraceEvents {
		switch ev.Ph {
		case "M":
			if ev.Name == "process_name" {
				r := ev.Pid - 1
				if want := fmt.Sprintf("rank %d on %s", r, e.Hosts[r%2].Addr); ev.Args["name"] != want {
					t.Errorf("track %d named %v, want %q", ev.Pid, ev.Args["name"], want)
				}
			}
		case "s", "f":
			flows[ev.ID]++
		}
	}
	if len(flows) != 4*3 {
		t.Errorf("%d flows, want %d", len(flows), 4*3)
	}
	for id, k := range flows {
		if k != 2 {
			t.Errorf("flow %d has %d ends, want 2", id, k)
		}
	}
	e.assertClean(t, 5*time.Second)
}

// TestTraceStopped: a job that --timeout stops still has its trace: the
// ranks give it before they are stopped, with the calls they are blocked
// in as unfinished events.
func TestTraceStopped(t *testing.T) {
	prog := buildHangprog(t)
	path := filepath.Join(t.TempDir(), "trace.json")
	if code, _, stderr := runJob(t, time.Minute, "-n", "2", "--timeout", "2s", "--trace", path, prog, "deadlock"); code != 124 {
		t.Fatalf("exit %d, want 124; stderr:\n%s", code, stderr)
	}
	tf := readTrace(t, path)
	got := map[int]bool{}
	for _, e := range tf.TraceEvents {
		if r := e.Pid - 1; e.Ph == "X" && e.Name == "Recv" && e.Args["unfinished"] != nil && e.Args["peer"] == float64(1-r) && e.Dur > 1e6 {
			got[r] = true
		}
	}
	if !got[0] || !got[1] {
		t.Errorf("unfinished Recv events on ranks %v, want 0 and 1: %+v", got, tf.TraceEvents)
	}
}
