package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Acceptance 1: a 64-rank ring, built from source, on this small machine.
func TestRing64(t *testing.T) {
	skipShort(t)
	code, out, stderr := runJob(t, 3*time.Minute, "-n", "64", "../../examples/ring")
	if code != 0 {
		t.Fatalf("exit %d; stdout %q\nstderr:\n%s", code, out, stderr)
	}
	want := "ring: token went 5 times around 64 ranks: 320, correct"
	if !slices.Contains(out, want) {
		t.Fatalf("stdout %q, want the line %q", out, want)
	}
}

func TestHello(t *testing.T) {
	code, out, stderr := runJob(t, time.Minute, "-n", "3", bin.hello)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	host, _ := os.Hostname()
	slices.Sort(out)
	want := []string{
		"hello from rank 0 of 3 on " + host,
		"hello from rank 1 of 3 on " + host,
		"hello from rank 2 of 3 on " + host,
	}
	if !slices.Equal(out, want) {
		t.Fatalf("stdout %q, want %q", out, want)
	}
}

// The launch contract: every rank gets its GORUN_* variables, the -x ones,
// the working directory and the arguments after the program.
func TestEnvContract(t *testing.T) {
	wdir := t.TempDir()
	t.Setenv("TESTVAR_FROM_GORUN", "inherited value")
	code, out, stderr := runJob(t, time.Minute, "-n", "3", "-x", "TESTVAR_SET=a=b", "-x", "TESTVAR_FROM_GORUN",
		"--wdir", wdir, bin.rankprog, "env", "-v", "--n", "x y")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	count := func(line string) int {
		n := 0
		for _, l := range out {
			if l == line {
				n++
			}
		}
		return n
	}
	var jobID, url string
	for _, l := range out {
		if v, ok := strings.CutPrefix(l, "GORUN_JOB_ID="); ok {
			jobID = v
		}
		if v, ok := strings.CutPrefix(l, "GORUN_NATS_URL="); ok {
			url = v
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(jobID) {
		t.Errorf("GORUN_JOB_ID %q is not a uuid", jobID)
	}
	if !regexp.MustCompile(`^nats://127\.0\.0\.1:[0-9]+$`).MatchString(url) {
		t.Errorf("GORUN_NATS_URL %q: want nats://127.0.0.1:PORT", url)
	}
	for _, line := range []string{
		"GORUN_SIZE=3", "GORUN_LOCAL_SIZE=3", "GORUN_JOB_ID=" + jobID, "GORUN_NATS_URL=" + url,
		"TESTVAR_SET=a=b", "TESTVAR_FROM_GORUN=inherited value", "wd " + wdir,
		`args ["-v" "--n" "x y"]`,
	} {
		if n := count(line); n != 3 {
			t.Errorf("%d ranks printed %q, want 3", n, line)
		}
	}
	for r := range 3 {
		for _, line := range []string{fmt.Sprintf("GORUN_RANK=%d", r), fmt.Sprintf("GORUN_LOCAL_RANK=%d", r)} {
			if n := count(line); n != 1 {
				t.Errorf("%d ranks printed %q, want 1", n, line)
			}
		}
	}
	// Each rank has credentials of its own (an nkey seed: 58 bytes), and no
	// job-wide token.
	creds := withPrefix(out, "GORUN_NATS_CREDS has ")
	seen := map[string]bool{}
	for _, l := range creds {
		if !strings.HasPrefix(l, "GORUN_NATS_CREDS has 58 bytes") {
			t.Errorf("a rank's credentials: %q", l)
		}
		seen[l] = true
	}
	if len(creds) != 3 || len(seen) != 3 {
		t.Errorf("%d ranks have GORUN_NATS_CREDS, %d different ones; want 3 and 3", len(creds), len(seen))
	}
	if n := len(withPrefix(out, "GORUN_NATS_TOKEN has ")); n != 0 {
		t.Errorf("%d ranks have GORUN_NATS_TOKEN, want none", n)
	}
}

// Ranks on one machine share its cores: each runs with GOMAXPROCS at
// cores/ranks (at least 1), unless the user sets GOMAXPROCS, in gorun's
// environment or with -x.
func TestGOMAXPROCSShared(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // restored at the end
	os.Unsetenv("GOMAXPROCS")
	// A single rank gets every core gorun may use (cgroup limits included).
	code, out, stderr := runJob(t, time.Minute, "-n", "1", bin.rankprog, "env")
	cpus := 0
	if got := withPrefix(out, "gomaxprocs "); code != 0 || len(got) != 1 {
		t.Fatalf("gorun -n 1: exit %d, %q; stderr:\n%s", code, got, stderr)
	} else if _, err := fmt.Sscanf(got[0], "gomaxprocs %d", &cpus); err != nil || cpus < 1 || cpus > runtime.NumCPU() {
		t.Fatalf("gorun -n 1: %q: want 1 to %d", got[0], runtime.NumCPU())
	}
	for _, tc := range []struct {
		n    int
		args []string
		env  string
		want int
	}{
		{n: 4, want: max(1, cpus/4)},
		{n: 2 * cpus, want: 1},
		{n: 4, args: []string{"-x", "GOMAXPROCS=3"}, want: 3},
		{n: 4, env: "5", want: 5},
	} {
		if tc.env != "" {
			t.Setenv("GOMAXPROCS", tc.env)
		}
		args := append(append([]string{"-n", strconv.Itoa(tc.n), "--oversubscribe"}, tc.args...), bin.rankprog, "env")
		code, out, stderr := runJob(t, time.Minute, args...)
		if code != 0 {
			t.Fatalf("gorun %v: exit %d; stderr:\n%s", args, code, stderr)
		}
		got := withPrefix(out, "gomaxprocs ")
		if len(got) != tc.n {
			t.Fatalf("gorun %v: %d ranks printed gomaxprocs, want %d", args, len(got), tc.n)
		}
		for _, g := range got {
			if g != fmt.Sprintf("gomaxprocs %d", tc.want) {
				t.Errorf("gorun %v (GOMAXPROCS=%q in gorun's environment): a rank printed %q, want %d", args, tc.env, g, tc.want)
			}
		}
	}
}

// A .go file is built and run too; a rank's last line without a newline is
// still printed, whole.
func TestGoFileAndPartialLine(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "partial.go")
	os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(\"partial line\") }\n"), 0o644)
	code, out, stderr := runJob(t, time.Minute, "-n", "3", "--tag-output", src)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	slices.Sort(out)
	want := []string{"[0] partial line", "[1] partial line", "[2] partial line"}
	if !slices.Equal(out, want) {
		t.Fatalf("stdout %q, want %q", out, want)
	}
}

// Standard input reaches rank 0, and only rank 0.
func TestStdinToRank0(t *testing.T) {
	j := startJob(t, strings.NewReader("first line\nsecond line\n"), "-n", "3", "--tag-output", bin.rankprog, "stdin")
	if code := j.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
	}
	var got []string
	for _, l := range j.lines() {
		if !strings.Contains(l, "pid ") {
			got = append(got, l)
		}
	}
	want := []string{"[0] first line", "[0] second line"}
	if !slices.Equal(got, want) {
		t.Fatalf("stdout %q, want %q", got, want)
	}
}

// --timeout: every rank stopped, a message saying so, exit 124.
func TestTimeout(t *testing.T) {
	start := time.Now()
	j := startJob(t, nil, "-n", "3", "--timeout", "1s", bin.rankprog, "sleep")
	pids := rankPids(t, j.waitLines("pid ", 3, 30*time.Second))
	started := time.Now() // the timeout runs from before this: a loaded machine's start-up does not count
	code := j.wait(30 * time.Second)
	elapsed := j.exitAt.Sub(start)
	if code != 124 {
		t.Fatalf("exit %d, want 124; stderr:\n%s", code, j.errText())
	}
	if got := gorunLines(j.errText()); len(got) != 1 || !strings.Contains(got[0], "timed out after 1s") {
		t.Errorf("gorun's stderr lines %q: want one saying the job timed out after 1s", got)
	}
	if elapsed < time.Second || j.exitAt.Sub(started) > 3*time.Second {
		t.Errorf("gorun exited %v after it started, %v after its ranks did; want 1s plus at most 2s", elapsed, j.exitAt.Sub(started))
	}
	assertNoneLeft(t, pidList(pids), 0)
}

// Every rank fails the same way: the job's code is theirs.
func TestAllRanksFail(t *testing.T) {
	code, _, stderr := runJob(t, time.Minute, "-n", "4", bin.rankprog, "exitall", "3")
	if code != 3 {
		t.Fatalf("exit %d, want 3; stderr:\n%s", code, stderr)
	}
	if got := gorunLines(stderr); len(got) != 1 || !strings.Contains(got[0], "exited with status 3") {
		t.Fatalf("gorun's stderr lines %q: want one naming a rank that exited with status 3", got)
	}
}

// Acceptance 4: no process's command line holds the job's secret while the
// job runs; -v does not print it either.
func TestSecretNotOnCommandLine(t *testing.T) {
	needLinux(t, "reads every process's command line in /proc")
	j := startJob(t, nil, "-n", "3", "-v", bin.rankprog, "sleep")
	pids := rankPids(t, j.waitLines("pid ", 3, 30*time.Second))
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	var secret string
	for _, kv := range strings.Split(string(env), "\x00") {
		if v, ok := strings.CutPrefix(kv, "GORUN_NATS_CREDS="); ok {
			secret = v
		}
	}
	if len(secret) < 32 {
		t.Fatalf("rank 0's GORUN_NATS_CREDS has %d bytes: want a long random secret", len(secret))
	}
	ents, _ := os.ReadDir("/proc")
	checked := 0
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		checked++
		if strings.Contains(string(cmdline), secret) {
			t.Errorf("the command line of process %s holds the job secret: %q", e.Name(), cmdline)
		}
	}
	if checked < 5 {
		t.Fatalf("read only %d command lines", checked)
	}
	j.cmd.Process.Signal(os.Interrupt)
	j.wait(30 * time.Second)
	if strings.Contains(j.errText(), secret) || strings.Contains(strings.Join(j.lines(), "\n"), secret) {
		t.Errorf("gorun printed the job secret")
	}
}
