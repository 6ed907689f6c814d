package placement

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseHostfile(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Host
		err      string // substring of the error; "" = no error
	}{
		{"bare host", "node1\n", []Host{{Name: "node1", Source: "hosts:1"}}, ""},
		{"slots", "# head\n\nnode1 slots=4\n", []Host{{Name: "node1", Slots: 4, Source: "hosts:3"}}, ""},
		{"max slots", "node1 slots=2 max_slots=3", []Host{{Name: "node1", Slots: 2, MaxSlots: 3, Source: "hosts:1"}}, ""},
		{"synonyms", "n count=2 max-slots=5\nm cpu=3", []Host{{Name: "n", Slots: 2, MaxSlots: 5, Source: "hosts:1"}, {Name: "m", Slots: 3, Source: "hosts:2"}}, ""},
		{"user", "alice@node1 slots=1 # comment", []Host{{Name: "node1", User: "alice", Slots: 1, Source: "hosts:1"}}, ""},
		{"hydra", "node1:8\nnode2", []Host{{Name: "node1", Slots: 8, Source: "hosts:1"}, {Name: "node2", Source: "hosts:2"}}, ""},
		{"ipv6", "[fd00::7]:2\nfd00::8\n", []Host{{Name: "fd00::7", Slots: 2, Source: "hosts:1"}, {Name: "fd00::8", Source: "hosts:2"}}, ""},
		{"duplicates add", "a:2\nb\na slots=3", []Host{{Name: "a", Slots: 5, Source: "hosts:1"}, {Name: "b", Source: "hosts:2"}}, ""},
		{"duplicate whole host", "a:2\na", []Host{{Name: "a", Source: "hosts:1"}}, ""},
		{"bad slots", "a\nb\nc slots=abc\n", nil, "hosts:3: slots=abc: not a positive integer"},
		{"zero slots", "a slots=0", nil, "hosts:1: slots=0: not a positive integer"},
		{"bad hydra", "a:x", nil, "hosts:1: a:x: not a positive integer"},
		{"empty hydra", "a:", nil, "hosts:1: a:: not a positive integer"},
		{"unknown key", "a slots=1\nb foo=2", nil, `hosts:2: unknown key "foo"`},
		{"not key value", "a b", nil, `hosts:1: "b": want key=value`},
		{"max below slots", "a slots=4 max_slots=2", nil, "hosts:1: slots=4 is more than max_slots=2"},
		{"empty", "", nil, "hosts: no hosts in the file"},
		{"only comments", "# nothing\n   \n", nil, "hosts: no hosts in the file"},
		{"bad user", "@a", nil, `hosts:1: "@a": want user@host`},
		{"shell chars", "a;rm", nil, `hosts:1: "a;rm": not a host name`},
		{"option-like", "-oProxyCommand=x", nil, "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHostfile(strings.NewReader(tt.in), "hosts")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseHostList(t *testing.T) {
	tests := []struct {
		in   string
		want []Host
		err  string
	}{
		{"a", []Host{{Name: "a", Slots: 1, Source: "--host"}}, ""},
		{"a,b:2", []Host{{Name: "a", Slots: 1, Source: "--host"}, {Name: "b", Slots: 2, Source: "--host"}}, ""},
		{"a,a,b", []Host{{Name: "a", Slots: 2, Source: "--host"}, {Name: "b", Slots: 1, Source: "--host"}}, ""},
		{"bob@a:3", []Host{{Name: "a", User: "bob", Slots: 3, Source: "--host"}}, ""},
		{"a,,b", nil, "empty host name"},
		{"a:0", nil, "--host: a:0: not a positive integer"},
	}
	for _, tt := range tests {
		got, err := ParseHostList(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseHostList(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseHostList(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestHostsExample checks that the documented example file parses as it says.
func TestHostsExample(t *testing.T) {
	hosts, err := ReadHostfile(filepath.Join("..", "..", "hosts.example"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Host{
		"node01":       {Name: "node01"},
		"node02":       {Name: "node02", Slots: 4},
		"node03":       {Name: "node03", Slots: 4, MaxSlots: 6},
		"alice@node04": {Name: "node04", User: "alice", Slots: 2},
		"node05":       {Name: "node05", Slots: 10},
		"10.0.0.7":     {Name: "10.0.0.7", Slots: 2},
		"fd00::7":      {Name: "fd00::7", Slots: 2},
		"localhost":    {Name: "localhost", Slots: 2},
	}
	if len(hosts) != len(want) {
		t.Fatalf("got %d hosts, want %d: %+v", len(hosts), len(want), hosts)
	}
	for _, h := range hosts {
		w, ok := want[h.String()]
		if !strings.HasPrefix(h.Source, filepath.Join("..", "..", "hosts.example")+":") {
			t.Errorf("%s: Source = %q", h, h.Source)
		}
		h.Source = ""
		if !ok || h != w {
			t.Errorf("got %+v, want %+v", h, w)
		}
	}
}

func TestReadHostfileMissing(t *testing.T) {
	_, err := ReadHostfile(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "nope") || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("error = %v, want a not-exist error naming the file", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
