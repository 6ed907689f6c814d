package placement

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"strings"
)

// Host is one machine of a job and how many ranks it may take.
type Host struct {
	Name     string // host name or address as ssh would take it ("localhost" for the local machine)
	User     string // from user@host, may be empty
	Slots    int    // ranks it takes before it counts as oversubscribed; 0 = one per core, asked at launch
	MaxSlots int    // hard limit, 0 = none
	Source   string // where it was declared, e.g. "hosts:3" (file:line) or "--host", for error messages
}

// Proc is where one rank runs.
type Proc struct {
	Rank, LocalRank, LocalSize int
	Host                       int // index into Plan.Hosts
}

// Plan is where every rank of a job runs.
type Plan struct {
	Hosts []Host
	Procs []Proc // indexed by rank
}

// Map-by policies accepted by MakePlan.
const (
	MapBySlot = "slot" // fill a host's slots before moving to the next (Open MPI's default)
	MapByNode = "node" // one rank per host in turn (round robin)
)

// String returns the host as ssh takes it: "user@name", or "name" without a user.
func (h Host) String() string {
	if h.User != "" {
		return h.User + "@" + h.Name
	}
	return h.Name
}

// IsLocal reports whether h is the machine gorun runs on, so its ranks start
// without ssh: "localhost", a loopback address (127.x, ::1), this machine's
// host name (full or short), or an address of one of its interfaces. A host
// with a user other than the current one is never local: ssh logs in as that
// user.
func (h Host) IsLocal() bool {
	if h.User != "" {
		if u, err := user.Current(); err != nil || u.Username != h.User {
			return false
		}
	}
	name := strings.TrimSuffix(strings.ToLower(h.Name), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	if ip := net.ParseIP(strings.Trim(name, "[]")); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		return isInterfaceAddr(ip)
	}
	if hn, err := os.Hostname(); err == nil {
		hn = strings.ToLower(hn)
		short, _, _ := strings.Cut(hn, ".")
		if name == hn || name == short {
			return true
		}
	}
	return false
}

// isInterfaceAddr reports whether ip is assigned to an interface of this machine.
func isInterfaceAddr(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// MakePlan places n ranks on hosts. mapBy is MapBySlot ("slot", also the
// default when empty: fill a host's slots before the next, so ranks on one host
// are consecutive) or MapByNode ("node": round robin over the hosts).
//
// More ranks than the hosts' slots in all is an error that says so, unless
// oversubscribe is set; then the extra ranks go round robin over the hosts. A
// host's MaxSlots is a hard limit even with oversubscribe. Every host must have
// a known slot count (Slots > 0): a hostfile line without slots=N is resolved
// (one slot per core) before planning. Hosts that get no rank stay in
// Plan.Hosts, so Proc.Host indexes the list as given.
func MakePlan(hosts []Host, n int, mapBy string, oversubscribe bool) (Plan, error) {
	if n < 1 {
		return Plan{}, fmt.Errorf("number of ranks must be at least 1, got %d", n)
	}
	if len(hosts) == 0 {
		return Plan{}, fmt.Errorf("no hosts to run %d ranks on", n)
	}
	total := 0
	for _, h := range hosts {
		if h.Slots < 1 {
			return Plan{}, fmt.Errorf("%s: host %s: slot count not known (%d)", h.Source, h, h.Slots)
		}
		if h.MaxSlots > 0 && h.MaxSlots < h.Slots {
			return Plan{}, fmt.Errorf("%s: host %s: max_slots=%d is less than slots=%d", h.Source, h, h.MaxSlots, h.Slots)
		}
		total += h.Slots
	}
	if n > total && !oversubscribe {
		return Plan{}, fmt.Errorf("%d ranks but only %d slots on %s; add hosts or slots, or pass --oversubscribe", n, total, hostCount(len(hosts)))
	}
	limit := func(i int) int { // how many ranks host i may take at most
		if oversubscribe && hosts[i].MaxSlots == 0 {
			return n
		}
		if oversubscribe {
			return hosts[i].MaxSlots
		}
		return hosts[i].Slots
	}
	// counts[i] = ranks on host i; order = host of each rank, in rank order.
	counts := make([]int, len(hosts))
	var order []int
	switch mapBy {
	case "", MapBySlot:
		placed := 0
		for i := range hosts {
			k := min(hosts[i].Slots, n-placed)
			counts[i] = k
			placed += k
		}
		if err := roundRobin(hosts, counts, n-placed, limit, nil); err != nil {
			return Plan{}, err
		}
		for i, c := range counts {
			for range c {
				order = append(order, i)
			}
		}
	case MapByNode:
		// First round robin within the slots, then (oversubscribed) beyond them.
		within := func(i int) int { return hosts[i].Slots }
		first := min(n, total)
		if err := roundRobin(hosts, counts, first, within, &order); err != nil {
			return Plan{}, err
		}
		if err := roundRobin(hosts, counts, n-first, limit, &order); err != nil {
			return Plan{}, err
		}
	default:
		return Plan{}, fmt.Errorf("--map-by %q: must be %q or %q", mapBy, MapBySlot, MapByNode)
	}
	p := Plan{Hosts: append([]Host(nil), hosts...), Procs: make([]Proc, n)}
	next := make([]int, len(hosts))
	for r, i := range order {
		p.Procs[r] = Proc{Rank: r, LocalRank: next[i], LocalSize: counts[i], Host: i}
		next[i]++
	}
	return p, nil
}

// roundRobin adds k ranks to counts one host at a time, skipping hosts at
// their limit, and appends each rank's host to order when order is not nil.
func roundRobin(hosts []Host, counts []int, k int, limit func(int) int, order *[]int) error {
	for i := 0; k > 0; {
		progress := false
		for range hosts {
			if counts[i] < limit(i) {
				counts[i]++
				k--
				progress = true
				if order != nil {
					*order = append(*order, i)
				}
			}
			i = (i + 1) % len(hosts)
			if k == 0 {
				return nil
			}
		}
		if !progress {
			sum := 0
			for _, c := range counts {
				sum += c
			}
			return fmt.Errorf("%d ranks do not fit: every host is at its max_slots after %d ranks", sum+k, sum)
		}
	}
	return nil
}

func hostCount(n int) string {
	if n == 1 {
		return "1 host"
	}
	return fmt.Sprintf("%d hosts", n)
}
