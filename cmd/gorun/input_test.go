package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Acceptance 6: bad input gets one clear line naming the problem, a
// non-zero exit, no stack trace, and starts no rank.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken")
	os.Mkdir(broken, 0o755)
	os.WriteFile(filepath.Join(broken, "go.mod"), []byte("module broken\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(broken, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644)
	notExec := filepath.Join(dir, "data.txt")
	os.WriteFile(notExec, []byte("hello\n"), 0o644)
	lib := filepath.Join(dir, "lib")
	os.Mkdir(lib, 0o755)
	os.WriteFile(filepath.Join(lib, "go.mod"), []byte("module lib\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(lib, "lib.go"), []byte("package lib\n\nfunc F() {}\n"), 0o644)

	// A listener that accepts connections and never speaks NATS.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// A closed port.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in gorun's last line
		max  time.Duration
	}{
		{"n-zero", []string{"-n", "0", bin.rankprog, "env"}, 2, "-n 0: the number of ranks must be at least 1", 0},
		{"n-negative", []string{"-n", "-3", bin.rankprog, "env"}, 2, "-n -3: the number of ranks must be at least 1", 0},
		{"np-zero", []string{"-np", "0", bin.rankprog, "env"}, 2, "-np 0: the number of ranks must be at least 1", 0},
		{"n-abc", []string{"-n", "abc", bin.rankprog, "env"}, 2, "-n abc: not a whole number (see gorun --help)", 0},
		{"n-missing-value", []string{"-n"}, 2, "-n needs a value: a whole number", 0},
		{"missing-program", []string{"-n", "2", "./no/such/prog"}, 1, "./no/such/prog: no such file or directory", 0},
		{"missing-command", []string{"-n", "2", "no-such-command-xyz"}, 1, "no-such-command-xyz: no such file, directory or command in PATH", 0},
		{"not-executable", []string{"-n", "2", notExec}, 1, "not executable", 0},
		{"does-not-compile", []string{"-n", "2", broken}, 1, "build failed", 0},
		{"not-main-package", []string{"-n", "2", lib}, 1, "not a main package", 0},
		{"unknown-flag", []string{"--frobnicate", bin.rankprog}, 2, "gorun: unknown flag --frobnicate (see gorun --help)", 0},
		{"flag-typo", []string{"--tagoutput", "-n", "2", bin.rankprog, "env"}, 2, "gorun: unknown flag --tagoutput: did you mean --tag-output? (see gorun --help)", 0},
		{"flag-typo-one-dash", []string{"-n", "2", "-timout", "5s", bin.rankprog, "env"}, 2, "unknown flag -timout: did you mean --timeout?", 0},
		{"flag-wrong-case", []string{"-N", "2", bin.rankprog, "env"}, 2, "unknown flag -N: did you mean -n?", 0},
		{"bool-bad-value", []string{"--tag-output=maybe", bin.rankprog, "env"}, 2, "--tag-output=maybe: not true or false", 0},
		{"no-program", []string{"-n", "2"}, 2, "no program to run", 0},
		{"timeout-garbage", []string{"--timeout", "soon", bin.rankprog, "env"}, 2, "--timeout soon: not a duration: a number with a unit, such as 90s, 5m or 1h30m", 0},
		{"timeout-no-unit", []string{"--timeout", "5", "-n", "2", bin.rankprog, "env"}, 2, "gorun: --timeout 5: a duration needs a unit: 5s, 5m or 5h (see gorun --help)", 0},
		{"timeout-no-unit-equals", []string{"-timeout=2.5", bin.rankprog, "env"}, 2, "-timeout=2.5: a duration needs a unit: 2.5s, 2.5m or 2.5h", 0},
		{"ssh-timeout-no-unit", []string{"--ssh-timeout", "10", bin.rankprog, "env"}, 2, "--ssh-timeout 10: a duration needs a unit: 10s", 0},
		{"timeout-negative", []string{"--timeout", "-1s", bin.rankprog, "env"}, 2, "--timeout -1s: must not be negative", 0},
		{"wdir-missing", []string{"--wdir", "/no/such/dir", bin.rankprog, "env"}, 2, "--wdir /no/such/dir: no such file or directory", 0},
		{"x-bad-name", []string{"-x", "=1", bin.rankprog, "env"}, 2, `-x "=1": empty variable name`, 0},
		{"x-contract-var", []string{"-x", "GORUN_RANK=9", bin.rankprog, "env"}, 2, "GORUN_RANK is set by gorun itself", 0},
		{"nats-bad-url", []string{"--nats", "http://x", bin.rankprog, "env"}, 2, `--nats http://x: scheme "http": want nats:// or tls://`, 0},
		{"nats-refused", []string{"--nats", "nats://" + closed, bin.rankprog, "env"}, 1, "--nats nats://" + closed + ": cannot connect", 5 * time.Second},
		{"nats-silent", []string{"--nats", "nats://" + silent.Addr().String(), bin.rankprog, "env"}, 1, "cannot connect", 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out, stderr := runJob(t, 30*time.Second, tc.args...)
			took := time.Since(start)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if len(out) != 0 {
				t.Errorf("stdout %q: want nothing (no rank may start)", out)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "gorun: ") || !strings.Contains(last, tc.want) {
				t.Errorf("last line of stderr %q: want gorun: ...%s...", last, tc.want)
			}
			if tc.name != "does-not-compile" && len(lines) != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", len(lines), stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stderr has a stack trace:\n%s", stderr)
			}
			if tc.max > 0 && took > tc.max {
				t.Errorf("took %v, want at most %v", took, tc.max)
			}
		})
	}
}

// A build error is shown as the compiler printed it (here for a directory
// outside any module, built as a list of files).
func TestBuildErrorShown(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644)
	code, _, stderr := runJob(t, time.Minute, "-n", "2", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr, "main.go:3:15: undefined: undefinedThing") {
		t.Fatalf("stderr lacks the compiler's message:\n%s", stderr)
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, out, stderr := runJob(t, 10*time.Second, "--help")
	text := strings.Join(out, "\n")
	if code != 0 || stderr != "" {
		t.Fatalf("--help: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"gorun [flags] PROGRAM [args...]", "Examples:", "gorun -n 8 ./examples/ring",
		"-n N", "-np N", "--tag-output", "-x VAR=VALUE", "--timeout DURATION", "--wdir DIR", "--nats URL", "-v\n", "--version", "124"} {
		if !strings.Contains(text, want) {
			t.Errorf("--help lacks %q:\n%s", want, text)
		}
	}
	code, out, _ = runJob(t, 10*time.Second, "--version")
	if code != 0 || len(out) != 1 || !strings.HasPrefix(out[0], "gorun ") {
		t.Fatalf("--version: exit %d, stdout %q", code, out)
	}
}

// --nats: ranks use an existing server, with the token from
// GORUN_NATS_TOKEN; a wrong token fails fast.
func TestExternalNATS(t *testing.T) {
	const token = "s3cret-token-for-the-test"
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, Authorization: token, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Setenv("GORUN_NATS_TOKEN", token)
	code, out, stderr := runJob(t, time.Minute, "-n", "3", "--nats", ns.ClientURL(), bin.hello)
	if code != 0 || len(out) != 3 {
		t.Fatalf("exit %d, stdout %q; stderr:\n%s", code, out, stderr)
	}
	// A token shared by every user of the server isolates nothing: said once.
	if n := strings.Count(stderr, "not isolated"); n != 1 {
		t.Errorf("the not-isolated warning %d times, want once; stderr:\n%s", n, stderr)
	}

	// A token in the URL works, with a warning, and reaches the ranks in
	// GORUN_NATS_TOKEN only: no rank's URL and no line of output holds it.
	t.Setenv("GORUN_NATS_TOKEN", "")
	u := strings.Replace(ns.ClientURL(), "nats://", "nats://"+token+"@", 1)
	code, out, stderr = runJob(t, time.Minute, "-n", "2", "--nats", u, bin.rankprog, "env")
	if code != 0 || !strings.Contains(stderr, "a token in the URL") {
		t.Fatalf("token in the URL: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if urls := withPrefix(out, "GORUN_NATS_URL="+ns.ClientURL()); len(urls) != 2 {
		t.Errorf("ranks' GORUN_NATS_URL: %q, want %s without the token", withPrefix(out, "GORUN_NATS_URL="), ns.ClientURL())
	}
	if n := len(withPrefix(out, "GORUN_NATS_TOKEN has 25 bytes")); n != 2 {
		t.Errorf("%d ranks got the URL's token in GORUN_NATS_TOKEN, want 2", n)
	}
	if strings.Contains(strings.Join(out, "\n")+stderr, token) {
		t.Errorf("the token is in gorun's or a rank's output")
	}

	t.Setenv("GORUN_NATS_TOKEN", "wrong")
	code, out, stderr = runJob(t, time.Minute, "-n", "3", "--nats", ns.ClientURL(), bin.hello)
	if code != 1 || len(out) != 0 || !strings.Contains(stderr, "cannot connect") || !strings.Contains(stderr, "uthorization") {
		t.Fatalf("wrong token: exit %d, stdout %q, stderr %q; want exit 1 and an authorization error", code, out, stderr)
	}
}

// TestUnusedHostWarning: a hostfile host that no rank lands on, and whose
// name does not resolve (a typo), gets a warning naming its line; the job
// runs on the others.
func TestUnusedHostWarning(t *testing.T) {
	hf := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hf, []byte("localhost slots=2\nnodd17.invalid slots=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	j := startJob(t, nil, "-n", "2", "--hostfile", hf, "/bin/echo", "hi")
	if code := j.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, j.errText())
	}
	want := "gorun: warning: " + hf + ":2: host nodd17.invalid: no rank placed on it, and its name does not resolve"
	if !strings.Contains(j.errText(), want) {
		t.Errorf("stderr %q: want %q", j.errText(), want)
	}
}
