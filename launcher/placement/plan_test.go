package placement

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// layout renders a plan as "host:rank/localRank/localSize" per rank.
func layout(p Plan) string {
	var b []string
	for _, pr := range p.Procs {
		b = append(b, fmt.Sprintf("%s:%d/%d/%d", p.Hosts[pr.Host].Name, pr.Rank, pr.LocalRank, pr.LocalSize))
	}
	return strings.Join(b, " ")
}

func TestMakePlan(t *testing.T) {
	h := func(name string, slots, max int) Host {
		return Host{Name: name, Slots: slots, MaxSlots: max, Source: "test"}
	}
	three := []Host{h("a", 2, 0), h("b", 2, 0), h("c", 2, 0)}
	tests := []struct {
		name   string
		hosts  []Host
		n      int
		mapBy  string
		over   bool
		want   string
		errHas string
	}{
		{"slot fills hosts", three, 6, "slot", false, "a:0/0/2 a:1/1/2 b:2/0/2 b:3/1/2 c:4/0/2 c:5/1/2", ""},
		{"default is slot", three, 3, "", false, "a:0/0/2 a:1/1/2 b:2/0/1", ""},
		{"node round robin", three, 5, "node", false, "a:0/0/2 b:1/0/2 c:2/0/1 a:3/1/2 b:4/1/2", ""},
		{"node skips full hosts", []Host{h("a", 1, 0), h("b", 3, 0)}, 4, "node", false, "a:0/0/1 b:1/0/3 b:2/1/3 b:3/2/3", ""},
		{"too many ranks", three, 7, "slot", false, "", "7 ranks but only 6 slots on 3 hosts; add hosts or slots, or pass --oversubscribe"},
		{"oversubscribe slot", []Host{h("a", 1, 0), h("b", 1, 0)}, 5, "slot", true, "a:0/0/3 a:1/1/3 a:2/2/3 b:3/0/2 b:4/1/2", ""},
		{"oversubscribe node", []Host{h("a", 1, 0), h("b", 1, 0)}, 3, "node", true, "a:0/0/2 b:1/0/1 a:2/1/2", ""},
		{"max_slots caps oversubscription", []Host{h("a", 1, 1), h("b", 1, 0)}, 3, "slot", true, "a:0/0/1 b:1/0/2 b:2/1/2", ""},
		{"max_slots everywhere", []Host{h("a", 1, 2), h("b", 1, 2)}, 5, "slot", true, "", "5 ranks do not fit"},
		{"unknown slots", []Host{h("a", 0, 0)}, 1, "slot", false, "", "test: host a: slot count not known"},
		{"bad map-by", three, 1, "core", false, "", `--map-by "core": must be "slot" or "node"`},
		{"no ranks", three, 0, "slot", false, "", "at least 1"},
		{"no hosts", nil, 1, "slot", false, "", "no hosts"},
		{"unused host kept", three, 1, "slot", false, "a:0/0/1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := MakePlan(tt.hosts, tt.n, tt.mapBy, tt.over)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error = %v, want %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := layout(p); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if len(p.Hosts) != len(tt.hosts) {
				t.Errorf("plan has %d hosts, want %d", len(p.Hosts), len(tt.hosts))
			}
		})
	}
}

func TestHostIsLocal(t *testing.T) {
	hn, _ := os.Hostname()
	for _, tt := range []struct {
		h    Host
		want bool
	}{
		{Host{Name: "localhost"}, true},
		{Host{Name: "127.0.0.1"}, true},
		{Host{Name: "127.1.2.3"}, true},
		{Host{Name: "::1"}, true},
		{Host{Name: hn}, true},
		{Host{Name: "192.0.2.254"}, false}, // TEST-NET-1, documentation only
		{Host{Name: "node-that-is-not-here.invalid"}, false},
		{Host{Name: "localhost", User: "someone-else-entirely"}, false},
	} {
		if got := tt.h.IsLocal(); got != tt.want {
			t.Errorf("%+v.IsLocal() = %v, want %v", tt.h, got, tt.want)
		}
	}
}
