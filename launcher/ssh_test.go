package launcher

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
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
