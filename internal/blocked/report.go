package blocked

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rank is what gorun knows of one rank when it reports: its state, or how
// it ended.
type Rank struct {
	Rank   int
	Host   string // "" when the job runs on one machine
	State  *State // nil: it did not answer
	Ended  string // how it ended ("exited with status 0 after Close"); "" while it runs
	Moving bool   // it used CPU or made progress between two looks
}

func (r *Rank) gone() bool    { return r.Ended != "" || (r.State != nil && r.State.Closed) }
func (r *Rank) blocked() bool { return !r.gone() && r.State != nil && len(r.State.Calls) > 0 }

// running: neither gone nor blocked, as far as gorun can tell (computing,
// in Init, or silent).
func (r *Rank) running() bool { return !r.gone() && !r.blocked() }

// String formats a call as the report shows it: Recv(src=1, tag=7,
// comm=world), Bcast(root=0, world).
func (c Call) String() string {
	var args []string
	if c.Coll {
		if c.Root != None {
			args = append(args, "root="+strconv.Itoa(c.Root))
		}
		args = append(args, c.Comm)
		return c.Op + "(" + strings.Join(args, ", ") + ")"
	}
	switch {
	case c.Peer == None:
	case c.Send && c.Peer == Any:
		args = append(args, "dst=all")
	case c.Send:
		args = append(args, "dst="+strconv.Itoa(c.Peer))
	case c.Peer == Any:
		args = append(args, "src=any")
	default:
		args = append(args, "src="+strconv.Itoa(c.Peer))
	}
	switch c.Tag {
	case None:
	case Any:
		args = append(args, "tag=any")
	default:
		args = append(args, "tag="+strconv.Itoa(c.Tag))
	}
	if c.Send && c.Bytes >= 0 {
		args = append(args, size(c.Bytes))
	}
	args = append(args, "comm="+c.Comm)
	return c.Op + "(" + strings.Join(args, ", ") + ")"
}

func size(n int) string {
	switch {
	case n < 1<<10:
		return strconv.Itoa(n) + " B"
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

// where is " blocked 5.0s at solver.go:42".
func (c Call) where() string {
	s := fmt.Sprintf(" blocked %.1fs", c.For.Seconds())
	if c.Site != "" {
		s += " at " + c.Site
	}
	return s
}

// Lines is the report's lines for r: the first says what it does (its
// longest-blocked call, or how it ended), one more per other call.
func Lines(r Rank) []string {
	who := "rank " + strconv.Itoa(r.Rank)
	if r.Host != "" {
		who += " (" + r.Host + ")"
	}
	st := r.State
	switch {
	case r.Ended != "":
		return []string{who + ": " + r.Ended}
	case st == nil:
		return []string{who + ": running, no answer (stopped, or too busy to answer)"}
	case st.Closed:
		return []string{who + ": closed its world; still running"}
	case len(st.Calls) == 0 && !st.Inited:
		return []string{who + ": running, not through Init"}
	case len(st.Calls) == 0:
		return []string{who + ": running, in no gorun call (computing)"}
	}
	out := []string{who + ": " + st.Calls[0].String() + st.Calls[0].where()}
	for _, c := range st.Calls[1:] {
		out = append(out, "    and "+c.String()+c.where())
	}
	if st.More > 0 {
		out = append(out, fmt.Sprintf("    and %d more blocked calls", st.More))
	}
	return out
}

// members is the world ranks of c's communicator.
func (c *Call) members(size int) []int {
	if c.Group != nil {
		return c.Group
	}
	all := make([]int, size)
	for i := range all {
		all[i] = i
	}
	return all
}

// collKey names one collective call across ranks: its communicator, its
// operation and its number there (packages number their own calls: pool's
// Map call 2 and a Barrier call 2 on one communicator are two calls).
type collKey struct {
	comm string
	op   string
	seq  uint32
}

func keyOf(c *Call) collKey { return collKey{c.Comm, c.Op, c.Seq} }

// analysis is the wait-for graph of a report.
type analysis struct {
	ranks []Rank
	in    map[collKey][]int // ranks blocked in each collective
	live  []bool            // may still move: running, or waiting on one that may
}

// waits is the world ranks that r's call c waits for: its peer; every
// other member for an any-source call; the members not yet in it for a
// collective. nil means it waits for none (a collective every member is
// in: under way).
func (a *analysis) waits(r int, c *Call) []int {
	switch {
	case c.Coll:
		in := a.in[keyOf(c)]
		var out []int
		for _, m := range c.members(len(a.ranks)) {
			if !slices.Contains(in, m) {
				out = append(out, m)
			}
		}
		return out
	case c.PeerWorld >= 0:
		return []int{c.PeerWorld}
	}
	var out []int
	for _, m := range c.members(len(a.ranks)) {
		if m != r {
			out = append(out, m)
		}
	}
	return out
}

func analyse(ranks []Rank) *analysis {
	a := &analysis{ranks: ranks, in: map[collKey][]int{}, live: make([]bool, len(ranks))}
	for i := range ranks {
		if !ranks[i].blocked() {
			continue
		}
		for _, c := range ranks[i].State.Calls {
			if c.Coll {
				k := keyOf(&c)
				a.in[k] = append(a.in[k], i)
			}
		}
	}
	for i := range ranks {
		a.live[i] = ranks[i].running() || (ranks[i].blocked() && (ranks[i].Moving || ranks[i].State.More > 0))
	}
	// A blocked rank may move if one of its calls waits for nobody or for
	// a rank that may move: to a fixed point.
	for changed := true; changed; {
		changed = false
		for i := range ranks {
			if a.live[i] || !ranks[i].blocked() {
				continue
			}
			for _, c := range ranks[i].State.Calls {
				ws := a.waits(i, &c)
				if len(ws) == 0 || slices.ContainsFunc(ws, func(w int) bool { return w >= 0 && w < len(ranks) && a.live[w] }) {
					a.live[i], changed = true, true
					break
				}
			}
		}
	}
	return a
}

// Verdict says what the ranks' states mean together, in a few lines: a
// cycle of ranks waiting for each other, a rank waiting for one that has
// ended or closed, a collective that some ranks entered and others did
// not. It says nothing is stuck, and why, when some rank may still move
// (one computing outside gorun's calls is never a deadlock), and returns
// nil when no rank is blocked. ranks holds every rank of the job, by
// rank.
func Verdict(ranks []Rank) []string {
	a := analyse(ranks)
	var stuck, blocked, running []int
	for i := range ranks {
		if ranks[i].blocked() {
			blocked = append(blocked, i)
			if !a.live[i] {
				stuck = append(stuck, i)
			}
		} else if ranks[i].running() {
			running = append(running, i)
		}
	}
	if len(blocked) == 0 {
		return nil
	}
	if len(stuck) == 0 {
		if len(running) > 0 {
			return []string{fmt.Sprintf("not a deadlock: %s still running outside gorun's calls, which the blocked ranks may be waiting for", ranksOf(running))}
		}
		return []string{"not a deadlock: the blocked ranks' messages are under way"}
	}
	var out []string
	if cyc := a.cycle(stuck); cyc != nil {
		var parts []string
		for k, r := range cyc {
			parts = append(parts, fmt.Sprintf("rank %d waits for rank %d", r, cyc[(k+1)%len(cyc)]))
		}
		out = append(out, "deadlock: "+strings.Join(parts, ", "))
	}
	// Ranks waiting for one that has gone.
	for _, r := range stuck {
		for _, c := range ranks[r].State.Calls {
			if c.Coll || c.PeerWorld < 0 || c.PeerWorld >= len(ranks) || !ranks[c.PeerWorld].gone() {
				continue
			}
			p := &ranks[c.PeerWorld]
			how := p.Ended
			if how == "" {
				how = "closed its world"
			}
			out = append(out, fmt.Sprintf("stuck: rank %d waits in %s for rank %d, which %s", r, c, c.PeerWorld, how))
		}
	}
	// Collectives some members entered and others did not.
	keys := make([]collKey, 0, len(a.in))
	for k := range a.in {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y collKey) int { return slices.Compare(a.in[x], a.in[y]) })
	for _, k := range keys {
		in := a.in[k]
		if !slices.ContainsFunc(in, func(r int) bool { return !a.live[r] }) {
			continue
		}
		c := a.callIn(in[0], k)
		var outs []int
		for _, m := range c.members(len(ranks)) {
			if !slices.Contains(in, m) {
				outs = append(outs, m)
			}
		}
		if len(outs) == 0 {
			continue
		}
		var what []string
		for _, m := range outs {
			what = append(what, fmt.Sprintf("rank %d %s", m, doing(&ranks[m])))
		}
		out = append(out, fmt.Sprintf("%s (call %d): %s in it, %s not: %s", c, c.Seq, ranksOf(in), ranksOf(outs), strings.Join(what, "; ")))
	}
	if len(out) == 0 || (!strings.HasPrefix(out[0], "deadlock") && !strings.HasPrefix(out[0], "stuck")) {
		out = append([]string{fmt.Sprintf("stuck: %s blocked for good (nothing they wait for can move)", ranksOf(stuck))}, out...)
	}
	return out
}

// callIn is rank r's call in collective k.
func (a *analysis) callIn(r int, k collKey) *Call {
	for i, c := range a.ranks[r].State.Calls {
		if c.Coll && keyOf(&c) == k {
			return &a.ranks[r].State.Calls[i]
		}
	}
	return nil
}

// doing says what rank r does, after "rank N".
func doing(r *Rank) string {
	switch {
	case r.Ended != "":
		return r.Ended
	case r.State == nil:
		return "did not answer"
	case r.State.Closed:
		return "closed its world"
	case len(r.State.Calls) == 0:
		return "is running, in no gorun call"
	}
	c := r.State.Calls[0]
	s := "is in " + c.String()
	if c.Site != "" {
		s += " at " + c.Site
	}
	return s
}

// cycle finds ranks of stuck that wait for each other in a ring, each for
// the next, starting from the lowest rank it can; nil if there is none.
func (a *analysis) cycle(stuck []int) []int {
	next := map[int][]int{}
	for _, r := range stuck {
		for _, c := range a.ranks[r].State.Calls {
			for _, w := range a.waits(r, &c) {
				if slices.Contains(stuck, w) && !slices.Contains(next[r], w) {
					next[r] = append(next[r], w)
				}
			}
		}
	}
	for _, start := range stuck {
		// Depth-first from start, back to start.
		path := []int{start}
		seen := map[int]bool{start: true}
		var dfs func(r int) bool
		dfs = func(r int) bool {
			for _, w := range next[r] {
				if w == start {
					return true
				}
				if !seen[w] && w > start {
					seen[w] = true
					path = append(path, w)
					if dfs(w) {
						return true
					}
					path = path[:len(path)-1]
				}
			}
			return false
		}
		if dfs(start) {
			return path
		}
	}
	return nil
}

// ranksOf is "rank 3", "ranks 0, 1" or "ranks 0-2, 5".
func ranksOf(rs []int) string {
	rs = slices.Clone(rs)
	slices.Sort(rs)
	var parts []string
	for i := 0; i < len(rs); {
		j := i
		for j+1 < len(rs) && rs[j+1] == rs[j]+1 {
			j++
		}
		if j > i+1 {
			parts = append(parts, fmt.Sprintf("%d-%d", rs[i], rs[j]))
			i = j + 1
		} else {
			parts = append(parts, strconv.Itoa(rs[i]))
			i++
		}
	}
	if len(rs) == 1 {
		return "rank " + parts[0]
	}
	return "ranks " + strings.Join(parts, ", ")
}

// AllBlocked reports whether every rank that runs is blocked in gorun's
// calls, none moving, and at least one is: the condition of a hang.
func AllBlocked(ranks []Rank) bool {
	any := false
	for i := range ranks {
		r := &ranks[i]
		if r.gone() {
			continue
		}
		if !r.blocked() || r.Moving {
			return false
		}
		any = true
	}
	return any
}

// Moved says whether a rank moved between two of its states taken d
// apart: its progress count changed, or it used more than a fifth of a
// core's time.
func Moved(before, after *State, d time.Duration) bool {
	if before == nil || after == nil {
		return false
	}
	return after.Progress != before.Progress || after.CPU-before.CPU > d/5
}
