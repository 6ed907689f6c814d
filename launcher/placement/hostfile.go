package placement

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ReadHostfile reads a hostfile (see ParseHostfile) from path; errors name the
// file and line, as in "hosts:3: slots=abc: not a positive integer".
func ReadHostfile(path string) ([]Host, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hostfile: %w", err)
	}
	defer f.Close()
	return ParseHostfile(f, path)
}

// ParseHostfile parses a host list in Open MPI's hostfile format or MPICH
// Hydra's, one host per line; name is the file name used in errors and in
// each Host's Source ("name:line"). Accepted lines:
//
//	node1                      # Open MPI: slots = cores of node1 (asked at launch)
//	node2 slots=4              # 4 slots
//	node3 slots=4 max_slots=6  # 4 slots, never more than 6 ranks even when oversubscribed
//	alice@node4 slots=2        # log in as alice
//	node5:8                    # Hydra: 8 slots
//
// "#" starts a comment; blank lines are skipped. "count" and "cpu" are
// accepted as Open MPI's synonyms of "slots", "max-slots" of "max_slots". A
// host listed more than once gets the sum of its slots. An IPv6 address with
// Hydra's ":N" must be bracketed ("[fe80::1]:2"). A file with no host is an
// error.
func ParseHostfile(r io.Reader, name string) ([]Host, error) {
	var hosts []Host
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		src := fmt.Sprintf("%s:%d", name, line)
		h, err := parseHostWord(fields[0], src, 0)
		if err != nil {
			return nil, err
		}
		for _, kv := range fields[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%s: %q: want key=value (slots=N or max_slots=N)", src, kv)
			}
			switch strings.ToLower(k) {
			case "slots", "count", "cpu":
				if h.Slots, err = positive(v); err != nil {
					return nil, fmt.Errorf("%s: %s: %w", src, kv, err)
				}
			case "max_slots", "max-slots":
				if h.MaxSlots, err = positive(v); err != nil {
					return nil, fmt.Errorf("%s: %s: %w", src, kv, err)
				}
			default:
				return nil, fmt.Errorf("%s: unknown key %q (known: slots, max_slots)", src, k)
			}
		}
		if h.MaxSlots > 0 && h.Slots > h.MaxSlots {
			return nil, fmt.Errorf("%s: slots=%d is more than max_slots=%d", src, h.Slots, h.MaxSlots)
		}
		hosts = mergeHost(hosts, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s: no hosts in the file", name)
	}
	return hosts, nil
}

// ParseHostList parses --host's value: comma-separated hosts, each "name",
// "user@name" or "name:N". As in Open MPI, a host without ":N" counts one
// slot per time it is listed ("a,a,b" is a:2, b:1). The hosts' Source is
// "--host".
func ParseHostList(s string) ([]Host, error) {
	var hosts []Host
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			return nil, fmt.Errorf("--host %q: empty host name", s)
		}
		h, err := parseHostWord(w, "--host", 1)
		if err != nil {
			return nil, err
		}
		hosts = mergeHost(hosts, h)
	}
	return hosts, nil
}

// parseHostWord parses "[user@]name[:N]"; a name without ":N" gets defSlots.
func parseHostWord(w, src string, defSlots int) (Host, error) {
	h := Host{Source: src, Slots: defSlots}
	if u, rest, ok := strings.Cut(w, "@"); ok {
		if u == "" || rest == "" || strings.Contains(rest, "@") {
			return Host{}, fmt.Errorf("%s: %q: want user@host", src, w)
		}
		h.User, w = u, rest
	}
	name, n := w, ""
	switch {
	case strings.HasPrefix(w, "["): // [v6addr] or [v6addr]:N
		end := strings.Index(w, "]")
		if end < 0 {
			return Host{}, fmt.Errorf("%s: %q: missing ]", src, w)
		}
		name = w[1:end]
		if rest := w[end+1:]; rest != "" {
			var ok bool
			if n, ok = strings.CutPrefix(rest, ":"); !ok {
				return Host{}, fmt.Errorf("%s: %q: unexpected %q after ]", src, w, rest)
			}
		}
	case strings.Count(w, ":") == 1:
		name, n, _ = strings.Cut(w, ":")
	}
	if name == "" {
		return Host{}, fmt.Errorf("%s: %q: empty host name", src, w)
	}
	if strings.ContainsAny(name, "=/'\"\\$`;|&<>(){}*?") || strings.HasPrefix(name, "-") {
		return Host{}, fmt.Errorf("%s: %q: not a host name", src, name)
	}
	h.Name = name
	if n != "" || strings.HasSuffix(w, ":") {
		s, err := positive(n)
		if err != nil {
			return Host{}, fmt.Errorf("%s: %s: %w", src, w, err)
		}
		h.Slots = s
	}
	return h, nil
}

// mergeHost appends h, or adds its slots to an earlier entry for the same
// user and host (the first entry keeps its Source).
func mergeHost(hosts []Host, h Host) []Host {
	for i := range hosts {
		if hosts[i].Name == h.Name && hosts[i].User == h.User {
			switch {
			case hosts[i].Slots == 0 || h.Slots == 0:
				hosts[i].Slots = 0 // one per core wins: the host is given whole
			default:
				hosts[i].Slots += h.Slots
			}
			if hosts[i].MaxSlots > 0 && h.MaxSlots > 0 {
				hosts[i].MaxSlots += h.MaxSlots
			} else {
				hosts[i].MaxSlots = 0 // one of them has no limit
			}
			return hosts
		}
	}
	return append(hosts, h)
}

func positive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("not a positive integer")
	}
	return n, nil
}
