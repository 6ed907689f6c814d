package launcher

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/file"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"n-zero", func(c *Config) { c.N = 0 }, "-n 0: the number of ranks must be at least 1"},
		{"n-negative", func(c *Config) { c.N = -2 }, "-n -2"},
		{"timeout-negative", func(c *Config) { c.Timeout = -time.Second }, "--timeout -1s: must not be negative"},
		{"timeout-set", func(c *Config) { c.Timeout = time.Minute }, ""},
		{"hang-report-negative", func(c *Config) { c.HangReport = -time.Second }, "--hang-report -1s: must not be negative"},
		{"hang-report-off", func(c *Config) { c.HangReport = 0 }, ""},
		{"trace-size-negative", func(c *Config) { c.TraceSize = -1 }, "--trace-size -1: must be at least 1"},
		{"trace-size-zero-traced", func(c *Config) { c.Trace = file; c.TraceSize = 0 }, "--trace-size 0: must be at least 1"},
		{"trace-ok", func(c *Config) { c.Trace = file }, ""},
		{"map-by-bad", func(c *Config) { c.MapBy = "core" }, `--map-by "core": must be slot or node`},
		{"map-by-node", func(c *Config) { c.MapBy = "node" }, ""},
		{"env-ok", func(c *Config) { c.Env = []string{"A=1", "B_2=x=y", "PATH"} }, ""},
		{"env-empty-name", func(c *Config) { c.Env = []string{"=1"} }, `-x "=1": empty variable name`},
		{"env-bad-name", func(c *Config) { c.Env = []string{"A-B=1"} }, `"A-B" is not a valid variable name`},
		{"env-contract", func(c *Config) { c.Env = []string{"GORUN_NATS_TOKEN=x"} }, "GORUN_NATS_TOKEN is set by gorun itself"},
		{"wdir-ok", func(c *Config) { c.WorkDir = dir }, ""},
		{"wdir-missing", func(c *Config) { c.WorkDir = dir + "/nope" }, "no such file or directory"},
		{"wdir-file", func(c *Config) { c.WorkDir = file }, "not a directory"},
		{"nats-ok", func(c *Config) { c.NATSURL = "nats://a:4222,tls://b:4222,c:4222" }, ""},
		{"nats-scheme", func(c *Config) { c.NATSURL = "http://a" }, `scheme "http"`},
		{"nats-empty-entry", func(c *Config) { c.NATSURL = "nats://a:1,,nats://b:2" }, "empty URL in list"},
		{"nats-redacted", func(c *Config) { c.NATSURL = "http://user:pw@a" }, "http://***@a"},
		{"nats-password", func(c *Config) { c.NATSURL = "nats://user:pw@a" }, "a user and password in the URL"},
		{"nats-creds-alone", func(c *Config) { c.NATSCreds = "/dev/null" }, "--nats-creds is for an existing NATS server"},
		{"nats-cert-no-key", func(c *Config) { c.NATSURL = "nats://a"; c.NATSCert = "/dev/null" }, "--nats-cert and --nats-key go together"},
		{"nats-account-no-key", func(c *Config) { c.NATSURL = "nats://a"; c.NATSAccount = "A" }, "give that too"},
		{"nats-creds-missing", func(c *Config) { c.NATSURL = "nats://a"; c.NATSCreds = "/nonexistent" }, "--nats-creds /nonexistent: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Fatalf("Validate's error shows the password: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://a:4222":                    "nats://a:4222",
		"nats://tok@a:4222":                "nats://***@a:4222",
		"nats://u:p@a:1,nats://b:2":        "nats://***@a:1,nats://b:2",
		"u:p@a:1":                          "***@a:1",
		"nats://a:1,tls://x:y@b:2":         "nats://a:1,tls://***@b:2",
		"nats://weird@user:pass@host:4222": "nats://***@host:4222",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		x    rankExit
		code int
		text string
	}{
		{rankExit{Rank: 3, Host: "h", Pid: 12, Code: 7}, 7, "rank 3 (pid 12 on host h) exited with status 7"},
		{rankExit{Rank: 0, Host: "h", Pid: 1, Signal: syscall.SIGKILL}, 137, "rank 0 (pid 1 on host h) was killed by signal 9 (SIGKILL)"},
		{rankExit{Rank: 1, Host: "h", Pid: 2, Signal: syscall.SIGSEGV}, 139, "was killed by signal 11 (SIGSEGV)"},
		{rankExit{Rank: 2, Host: "h", Pid: 3, Code: 2, Panicked: true}, 2, "exited with status 2 after a panic"},
		{rankExit{Rank: 4, Host: "h", Err: errors.New("could not start: boom")}, 1, "rank 4 (on host h) could not start: boom"},
	} {
		if !tc.x.failed() {
			t.Errorf("%v: not failed", tc.x)
		}
		if got := tc.x.exitCode(); got != tc.code {
			t.Errorf("%v: exit code %d, want %d", tc.x, got, tc.code)
		}
		if got := tc.x.String(); !strings.Contains(got, tc.text) {
			t.Errorf("String() = %q, want %q in it", got, tc.text)
		}
	}
	if (rankExit{Rank: 1}).failed() || (rankExit{Rank: 1, NotStarted: true}).failed() {
		t.Error("a rank that exited 0 or never started counts as failed")
	}
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != ExitFailure || ExitCode(&ExitError{Code: 9}) != 9 {
		t.Error("ExitCode")
	}
}

// TestSlotLocal: a host that is this machine and has no slot count gets
// one per core (at most its max); a remote one without is named for its
// agent (or, under Slurm, an error) to count; counts given stay.
func TestSlotLocal(t *testing.T) {
	cores := runtime.NumCPU()
	hosts := []Host{
		{Name: "localhost"},
		{Name: "localhost", MaxSlots: 1},
		{Name: "localhost", Slots: 7},
		{Name: "node1"},
		{Name: "node2", Slots: 3},
		{Name: "node3", MaxSlots: 2},
	}
	unslotted := slotLocal(hosts)
	if want := []int{3, 5}; !slices.Equal(unslotted, want) {
		t.Errorf("unslotted %v, want %v", unslotted, want)
	}
	for i, want := range []int{cores, 1, 7, 0, 3, 0} {
		if hosts[i].Slots != want {
			t.Errorf("host %d (%+v): %d slots, want %d", i, hosts[i], hosts[i].Slots, want)
		}
	}
}
