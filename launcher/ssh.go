package launcher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SSHOptions say how gorun starts ranks on other hosts. It runs the system's
// ssh client, so the user's ~/.ssh/config, keys and agent apply.
//
// How a remote host's ranks start: gorun logs in once per host, running
//
//	ssh [Opts] -T -o BatchMode=yes -o ConnectTimeout=N ... host 'exec /bin/sh -c "<reader>"'
//
// where <reader> is a fixed one-line loop that reads a small shell script
// from its standard input (up to a line "."), then runs it. That script
// (bootstrap) starts the host's agent: this gorun binary from the user's
// cache on that host, after copying it there through the same session if
// the host lacks this build (and its platform matches). From then on gorun
// and the agent talk in frames over the session's standard input and
// output (RunAgent): the job (with the secret and the host's TLS key), the
// ranks' output, their ends, stop requests, rank 0's input. No command
// line on any host holds the secret or anything job-specific. The agent
// stops its ranks when gorun says so, and by itself when its standard
// input ends (gorun stopped the job, died, or the connection is lost) or
// when nothing came from gorun for AgentHeartbeatTimeout (the connection is
// cut without an end: a link down); gorun ends the job, naming the host,
// when nothing came from the agent for as long.
type SSHOptions struct {
	// Program is the ssh client; "" means "ssh" from PATH.
	Program string

	// Opts are extra ssh options given before gorun's own (so they win),
	// e.g. {"-i", "key", "-o", "Port=2222"}: gorun's --ssh-opts, or the
	// GORUN_SSH_OPTS variable.
	Opts []string

	// ConnectTimeout bounds ssh's connection to a host (its ConnectTimeout
	// option) and gorun's check of each host before the job starts; 0
	// means 10 s.
	ConnectTimeout time.Duration

	// Copy copies the program to every remote host (into a private
	// directory under /tmp, through two more logins per host) and removes
	// it when the job ends; without it the program must be at the same
	// path on every host.
	Copy bool

	// Advertise is the host name or address the other hosts' servers
	// reach gorun's embedded NATS server at, for the job's cluster routes.
	// "" means the address of this machine's interface that routes to the
	// first remote host.
	Advertise string
}

// defaultSSHTimeout is SSHOptions.ConnectTimeout's default.
const defaultSSHTimeout = 10 * time.Second

// Marker lines between gorun and the script on a remote host.
const (
	probeLine   = "gorun-probe"
	copyLine    = "gorun-copy"
	startMarker = "\x1egorun-start\n" // first on a rank's stdout: logged in and starting
	exitMarker  = "\x1egorun-exit "   // last on a rank's stdout: "<code> <pid>\n"
)

// remoteReader is the command line every remote session runs: it reads a
// script from stdin up to a line ".", then runs it, leaving the rest of
// stdin to the script; a script cut short (no ".") is not run at all. It
// holds nothing job-specific, and survives csh, fish and POSIX login shells
// alike (no "!", newline or single quote inside).
const remoteReader = `exec /bin/sh -c 'n=$(printf "\n_"); n=${n%_}; s=; while IFS= read -r l; do if [ "$l" = . ]; then eval "$s"; exit; fi; s="$s$l$n"; done; exit 1'`

// ParseSSHOpts splits an --ssh-opts (or GORUN_SSH_OPTS) value into
// arguments as a POSIX shell would: at unquoted blanks, with '...' and
// "..." quoting and backslash escapes.
func ParseSSHOpts(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == '\\':
			if i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			}
			inArg = true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(c)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("ssh options %q: unterminated %c quote", s, quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// shQuote quotes s for a POSIX shell as one word. Newlines become "$n" (the
// reader's newline variable), so a script line never holds a raw newline
// from a value and never reads as the end marker.
func shQuote(s string) string {
	s = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	return strings.ReplaceAll(s, "\n", `'"$n"'`)
}

// sshArgs is the ssh command line for host h running command.
func (o *SSHOptions) sshArgs(h Host, command string) []string {
	secs := int((o.timeout() + time.Second - 1) / time.Second)
	args := append([]string(nil), o.Opts...)
	args = append(args,
		"-T", "-x",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout="+strconv.Itoa(secs),
		"-o", "ServerAliveInterval=10",
		"-o", "ServerAliveCountMax=3",
		h.String(), command)
	return args
}

func (o *SSHOptions) timeout() time.Duration {
	if o.ConnectTimeout > 0 {
		return o.ConnectTimeout
	}
	return defaultSSHTimeout
}

func (o *SSHOptions) program() string {
	if o.Program != "" {
		return o.Program
	}
	return "ssh"
}

// command is an ssh process for h running the remote reader, in a process
// group of its own (the terminal's Ctrl-C reaches gorun only) that dies
// with gorun.
func (o *SSHOptions) command(h Host) *exec.Cmd {
	cmd := exec.Command(o.program(), o.sshArgs(h, remoteReader)...)
	cmd.SysProcAttr = rankProcAttr()
	return cmd
}

// runScript runs script on h and returns its stdout; after the script it
// sends body (if not nil) on stdin. The whole exchange must end within the
// connect timeout plus extra.
func (o *SSHOptions) runScript(ctx context.Context, h Host, script string, body io.Reader, extra time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout()+extra)
	defer cancel()
	cmd := o.command(h)
	var stdin io.Reader = strings.NewReader(script + ".\n")
	if body != nil {
		stdin = io.MultiReader(stdin, body)
	}
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("cannot run %s: %w", o.program(), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", fmt.Errorf("no answer within %v", o.timeout()+extra)
		}
		return "", ctx.Err()
	}
	if err != nil {
		msg := lastLine(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.String(), errors.New(msg)
	}
	return stdout.String(), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// routeAddr is the address of this machine's interface that routes to h
// (as ssh would reach it, after ~/.ssh/config's HostName), or this
// machine's host name if that cannot be told.
func routeAddr(ctx context.Context, o *SSHOptions, h Host) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return addrToward(ctx, sshHostName(ctx, o, h))
}

// sshHostName is the host name ssh would connect to for h, after
// ~/.ssh/config's HostName (ssh -G prints the configuration ssh would use,
// without connecting); h's own name if that cannot be told.
func sshHostName(ctx context.Context, o *SSHOptions, h Host) string {
	args := append(append([]string(nil), o.Opts...), "-G", h.String())
	if out, err := exec.CommandContext(ctx, o.program(), args...).Output(); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "hostname "); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return h.Name
}

// addrToward is the address of this machine's interface that routes to
// the host name (or address) name, or this machine's host name if that
// cannot be told.
func addrToward(ctx context.Context, name string) string {
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err == nil && len(addrs) > 0 {
		// A UDP "connection" sends nothing; it only picks the route.
		if c, err := net.Dial("udp", net.JoinHostPort(addrs[0], "22")); err == nil {
			defer c.Close()
			if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
				return a.IP.String()
			}
		}
	}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		return hn
	}
	return "localhost"
}

// loopbackURL says whether a NATS URL list names only loopback hosts.
func loopbackURL(urls string) bool {
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if i := strings.Index(u, "://"); i >= 0 {
			u = u[i+3:]
		}
		if i := strings.LastIndex(u, "@"); i >= 0 {
			u = u[i+1:]
		}
		host := u
		if h, _, err := net.SplitHostPort(u); err == nil {
			host = h
		}
		host = strings.Trim(strings.ToLower(host), "[]")
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}
