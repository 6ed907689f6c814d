package placement

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpandNodelist(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"node1", []string{"node1"}, ""},
		{"a,b,c", []string{"a", "b", "c"}, ""},
		{"node[01-04,07]", []string{"node01", "node02", "node03", "node04", "node07"}, ""},
		{"node[8-11]", []string{"node8", "node9", "node10", "node11"}, ""},
		{"node[098-101]", []string{"node098", "node099", "node100", "node101"}, ""},
		{"gpu[1,3],cpu01", []string{"gpu1", "gpu3", "cpu01"}, ""},
		{"r[1-2]n[1-2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}, ""},
		{"n[1-2].ib", []string{"n1.ib", "n2.ib"}, ""},
		{"[1-2]x", []string{"1x", "2x"}, ""},
		{"node[5]", []string{"node5"}, ""},
		{"node[01-04", nil, "unbalanced ["},
		{"node]", nil, "unbalanced ]"},
		{"node[[1]]", nil, "nested ["},
		{"node[4-2]", nil, "goes down"},
		{"node[a-b]", nil, "bad range"},
		{"node[1-]", nil, "bad range"},
		{"a,,b", nil, "empty host name"},
		{"", nil, "empty host name"},
	}
	for _, tt := range tests {
		got, err := ExpandNodelist(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ExpandNodelist(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ExpandNodelist(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseTasksPerNode(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  string
	}{
		{"4", []int{4}, ""},
		{"2(x3),1", []int{2, 2, 2, 1}, ""},
		{"1,2(x2),3", []int{1, 2, 2, 3}, ""},
		{"16(x1)", []int{16}, ""},
		{"0", nil, "positive integer"},
		{"2(3)", nil, "want N or N(xM)"},
		{"2(x0)", nil, "want N or N(xM)"},
		{"2(x3", nil, "want N or N(xM)"},
		{"x", nil, "positive integer"},
		{"", nil, "positive integer"},
	}
	for _, tt := range tests {
		got, err := ParseTasksPerNode(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTasksPerNode(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTasksPerNode(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSlurmHosts(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name   string
		getenv func(string) string
		want   []Host
		ok     bool
		err    string
	}{
		{"outside", env(), nil, false, ""},
		{"tasks", env("SLURM_JOB_NODELIST", "n[1-3]", "SLURM_TASKS_PER_NODE", "2(x2),1"), []Host{
			{Name: "n1", Slots: 2, Source: "SLURM_JOB_NODELIST"},
			{Name: "n2", Slots: 2, Source: "SLURM_JOB_NODELIST"},
			{Name: "n3", Slots: 1, Source: "SLURM_JOB_NODELIST"},
		}, true, ""},
		{"cpus fallback", env("SLURM_NODELIST", "a,b", "SLURM_JOB_CPUS_PER_NODE", "8(x2)"), []Host{
			{Name: "a", Slots: 8, Source: "SLURM_NODELIST"},
			{Name: "b", Slots: 8, Source: "SLURM_NODELIST"},
		}, true, ""},
		{"no counts", env("SLURM_JOB_NODELIST", "a"), []Host{{Name: "a", Source: "SLURM_JOB_NODELIST"}}, true, ""},
		{"count mismatch", env("SLURM_JOB_NODELIST", "n[1-3]", "SLURM_TASKS_PER_NODE", "2(x2)"), nil, true, "gives 2 counts for the 3 nodes"},
		{"bad list", env("SLURM_JOB_NODELIST", "n[1-"), nil, true, `SLURM_JOB_NODELIST="n[1-"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := SlurmHosts(tt.getenv)
			if ok != tt.ok {
				t.Errorf("ok = %v, want %v", ok, tt.ok)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
