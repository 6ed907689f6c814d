package launcher

import (
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSSHOpts(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"  -p 2222 ", []string{"-p", "2222"}, ""},
		{"-i '/path with space/key' -o StrictHostKeyChecking=no", []string{"-i", "/path with space/key", "-o", "StrictHostKeyChecking=no"}, ""},
		{`-o "ProxyCommand=ssh -W %h:%p gw"`, []string{"-o", "ProxyCommand=ssh -W %h:%p gw"}, ""},
		{`a\ b "c\"d" 'e\f'`, []string{"a b", `c"d`, `e\f`}, ""},
		{`''`, []string{""}, ""},
		{"-o 'x", nil, "unterminated ' quote"},
		{`-o "x`, nil, `unterminated " quote`},
	}
	for _, tt := range tests {
		got, err := ParseSSHOpts(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSSHOpts(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSSHOpts(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestRemoteReader runs the command line every remote session runs under
// the login shells found here, with a script that exports awkward values
// (quotes, newlines, a line that is only ".", $ and backquotes), and checks
// that they arrive intact and that stdin after the script is left to it.
func TestRemoteReader(t *testing.T) {
	values := []string{"plain", "it's", `a "b" $HOME ` + "`id`", "two\nlines", "x\n.\ny", "", "trailing\n"}
	var script strings.Builder
	for i, v := range values {
		script.WriteString("export V" + string(rune('0'+i)) + "=" + shQuote(v) + "\n")
	}
	script.WriteString(`for i in 0 1 2 3 4 5 6; do eval "printf '%s|' \"\$V$i\""; done` + "\n")
	script.WriteString("cat\n.\nrest of stdin\n")
	want := strings.Join(values, "|") + "|rest of stdin\n"
	ran := 0
	for _, sh := range []string{"sh", "dash", "bash", "zsh", "ksh", "csh", "tcsh", "fish"} {
		path, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		ran++
		t.Run(sh, func(t *testing.T) {
			cmd := exec.Command(path, "-c", remoteReader)
			cmd.Stdin = strings.NewReader(script.String())
			out, err := cmd.CombinedOutput()
			if err != nil || string(out) != want {
				t.Errorf("got %q, %v\nwant %q", out, err, want)
			}
		})
	}
	if ran == 0 {
		t.Fatal("no shell found")
	}
	// A script cut short (the session ended before its last line) must not
	// run: half a rank script could start a program without its watcher.
	cmd := exec.Command("sh", "-c", remoteReader)
	cmd.Stdin = strings.NewReader("echo ran\n")
	if out, err := cmd.CombinedOutput(); err == nil || len(out) != 0 {
		t.Errorf("a script without its end line ran: %q, %v", out, err)
	}
}

// TestStubReader checks that the markers of the remote script are taken out
// of a rank's stdout, however the bytes are split, and the rest passes whole.
func TestStubReader(t *testing.T) {
	stream := "banner\n" + startMarker + "out 1\npartial \x1e not a marker\nlast" + exitMarker + "7 4242\n"
	for chunk := 1; chunk <= len(stream); chunk++ {
		pr, pw := io.Pipe()
		r := newStubReader(pr)
		go func() {
			for s := stream; len(s) > 0; {
				k := min(chunk, len(s))
				pw.Write([]byte(s[:k]))
				s = s[k:]
			}
			pw.Close()
		}()
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := "banner\nout 1\npartial \x1e not a marker\nlast"; string(got) != want {
			t.Fatalf("chunk %d: got %q, want %q", chunk, got, want)
		}
		select {
		case <-r.started:
		case <-time.After(time.Second):
			t.Fatal("started not closed")
		}
		if code, pid, ok := r.exit(); !ok || code != 7 || pid != 4242 {
			t.Fatalf("chunk %d: exit = %d, %d, %v; want 7, 4242, true", chunk, code, pid, ok)
		}
	}
}

// TestStubReaderNoExit: a session that ends without the exit marker (ssh
// failed, or the connection was lost) passes everything on and reports no
// exit.
func TestStubReaderNoExit(t *testing.T) {
	r := newStubReader(io.NopCloser(strings.NewReader("ssh: connect to host x: refused\n\x1egorun-exit 3")))
	got, _ := io.ReadAll(r)
	if string(got) != "ssh: connect to host x: refused\n\x1egorun-exit 3" {
		t.Errorf("got %q", got)
	}
	if _, _, ok := r.exit(); ok {
		t.Error("exit reported without a whole marker")
	}
}

func TestLoopbackURL(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"nats://127.0.0.1:4222", true},
		{"nats://tok@localhost:4222,nats://[::1]:4223", true},
		{"nats://bus.example:4222", false},
		{"nats://127.0.0.1:4222,nats://10.0.0.2:4222", false},
	} {
		if got := loopbackURL(tt.in); got != tt.want {
			t.Errorf("loopbackURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
