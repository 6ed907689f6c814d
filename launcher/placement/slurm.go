package placement

import (
	"fmt"
	"strconv"
	"strings"
)

// SlurmHosts builds the host list of a Slurm allocation from its environment
// (getenv is os.Getenv in gorun): the nodes of SLURM_JOB_NODELIST (or
// SLURM_NODELIST), each with the slots SLURM_TASKS_PER_NODE gives it (or,
// without it, SLURM_JOB_CPUS_PER_NODE; without either, one per core). ok is
// false outside an allocation (no node list set).
func SlurmHosts(getenv func(string) string) (hosts []Host, ok bool, err error) {
	src, list := "SLURM_JOB_NODELIST", getenv("SLURM_JOB_NODELIST")
	if list == "" {
		src, list = "SLURM_NODELIST", getenv("SLURM_NODELIST")
	}
	if list == "" {
		return nil, false, nil
	}
	nodes, err := ExpandNodelist(list)
	if err != nil {
		return nil, true, fmt.Errorf("%s=%q: %w", src, list, err)
	}
	var counts []int
	for _, v := range []string{"SLURM_TASKS_PER_NODE", "SLURM_JOB_CPUS_PER_NODE"} {
		s := getenv(v)
		if s == "" {
			continue
		}
		if counts, err = ParseTasksPerNode(s); err != nil {
			return nil, true, fmt.Errorf("%s=%q: %w", v, s, err)
		}
		if len(counts) != len(nodes) {
			return nil, true, fmt.Errorf("%s=%q gives %d counts for the %d nodes of %s=%q", v, s, len(counts), len(nodes), src, list)
		}
		break
	}
	for i, n := range nodes {
		h := Host{Name: n, Source: src}
		if counts != nil {
			h.Slots = counts[i]
		}
		hosts = append(hosts, h)
	}
	return hosts, true, nil
}

// ExpandNodelist expands a Slurm host list in its compressed form:
// "node[01-04,07],gpu1" is node01, node02, node03, node04, node07, gpu1.
// Ranges keep the zero padding of their first bound, and several bracket
// groups in one name expand to every combination ("r[1-2]n[1-2]" is r1n1,
// r1n2, r2n1, r2n2), as scontrol show hostnames does.
func ExpandNodelist(s string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch s[i] {
			case '[':
				if depth++; depth > 1 {
					return nil, fmt.Errorf("nested [ at offset %d", i)
				}
				continue
			case ']':
				if depth--; depth < 0 {
					return nil, fmt.Errorf("unbalanced ] at offset %d", i)
				}
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		if depth != 0 {
			return nil, fmt.Errorf("unbalanced [")
		}
		word := strings.TrimSpace(s[start:i])
		start = i + 1
		if word == "" {
			return nil, fmt.Errorf("empty host name")
		}
		names, err := expandWord(word)
		if err != nil {
			return nil, err
		}
		out = append(out, names...)
	}
	return out, nil
}

// expandWord expands one name with zero or more [ranges] groups.
func expandWord(w string) ([]string, error) {
	open := strings.IndexByte(w, '[')
	if open < 0 {
		return []string{w}, nil
	}
	end := strings.IndexByte(w[open:], ']') + open
	prefix, body := w[:open], w[open+1:end]
	rest, err := expandWord(w[end+1:])
	if err != nil {
		return nil, err
	}
	var out []string
	for _, part := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if lo == "" || hi == "" || err1 != nil || err2 != nil || a < 0 || b < 0 {
			return nil, fmt.Errorf("%q: bad range %q", w, part)
		}
		if b < a {
			return nil, fmt.Errorf("%q: range %q goes down", w, part)
		}
		if b-a >= 1<<20 {
			return nil, fmt.Errorf("%q: range %q is too large", w, part)
		}
		for n := a; n <= b; n++ {
			num := fmt.Sprintf("%0*d", len(lo), n)
			for _, r := range rest {
				out = append(out, prefix+num+r)
			}
		}
	}
	return out, nil
}

// ParseTasksPerNode expands Slurm's per-node count lists, as in
// SLURM_TASKS_PER_NODE and SLURM_JOB_CPUS_PER_NODE: "2(x3),1" is 2, 2, 2, 1.
func ParseTasksPerNode(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		num, rep := part, 1
		if i := strings.IndexByte(part, '('); i >= 0 {
			r, ok := strings.CutPrefix(part[i+1:], "x")
			r, ok2 := strings.CutSuffix(r, ")")
			n, err := strconv.Atoi(r)
			if !ok || !ok2 || err != nil || n < 1 {
				return nil, fmt.Errorf("%q: want N or N(xM)", part)
			}
			num, rep = part[:i], n
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want N or N(xM) with N a positive integer", part)
		}
		if len(out)+rep > 1<<20 {
			return nil, fmt.Errorf("%q: too many nodes", part)
		}
		for range rep {
			out = append(out, n)
		}
	}
	return out, nil
}
