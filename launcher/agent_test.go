package launcher

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestGoPlatform(t *testing.T) {
	for _, tt := range []struct{ uname, want string }{
		{"Linux x86_64", "linux/amd64"},
		{"Linux aarch64", "linux/arm64"},
		{"Darwin arm64", "darwin/arm64"},
		{"FreeBSD amd64", "freebsd/amd64"},
		{"Linux mips", "linux/mips"},
		{"garbage", ""},
	} {
		if got := goPlatform(tt.uname); got != tt.want {
			t.Errorf("goPlatform(%q) = %q, want %q", tt.uname, got, tt.want)
		}
	}
}

// fakeSSH is an ssh that runs the remote command here, with HOME (and so
// the agent cache) in a directory of the test's, and an uname that says
// uname.
func fakeSSH(t *testing.T, uname string) *SSHOptions {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "uname"), []byte("#!/bin/sh\necho '"+uname+"'\n"), 0o755)
	ssh := filepath.Join(dir, "ssh")
	os.WriteFile(ssh, []byte("#!/bin/sh\nfor a; do c=$a; done\nexport HOME="+dir+" XDG_CACHE_HOME=\nPATH="+bin+":$PATH exec /bin/sh -c \"$c\"\n"), 0o755)
	return &SSHOptions{Program: ssh, ConnectTimeout: 5 * time.Second}
}

// A host of another platform gets one error naming it and both platforms,
// and nothing is copied there.
func TestAgentPlatformMismatch(t *testing.T) {
	other := "Linux aarch64"
	if runtime.GOARCH == "arm64" {
		other = "Linux x86_64"
	}
	o := fakeSSH(t, other)
	_, err := startAgent(context.Background(), o, Host{Name: "far", Source: "--host"}, t.Logf)
	want := "host far is " + other + " (" + goPlatform(other) + "), this gorun is built for " + runtime.GOOS + "/" + runtime.GOARCH
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("startAgent: %v; want an error with %q", err, want)
	}
	home := filepath.Dir(o.Program)
	if m, _ := filepath.Glob(filepath.Join(home, ".cache", "gorun", "*", "*")); len(m) != 0 {
		t.Errorf("something was copied: %v", m)
	}
}

// A session that ends before the agent starts (ssh could not log in) is
// one error with what ssh said.
func TestAgentLoginFailure(t *testing.T) {
	dir := t.TempDir()
	ssh := filepath.Join(dir, "ssh")
	os.WriteFile(ssh, []byte("#!/bin/sh\necho 'ssh: connect to host far port 22: Connection refused' >&2\nexit 255\n"), 0o755)
	_, err := startAgent(context.Background(), &SSHOptions{Program: ssh}, Host{Name: "far", Source: "hosts:3"}, t.Logf)
	want := "cannot log in with ssh (hosts:3): ssh: connect to host far port 22: Connection refused"
	if err == nil || err.Error() != want {
		t.Fatalf("startAgent: %v; want %q", err, want)
	}
}
