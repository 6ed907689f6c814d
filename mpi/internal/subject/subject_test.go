package subject

import "testing"

func TestCheckJob(t *testing.T) {
	tests := []struct {
		job string
		ok  bool
	}{
		{"6f1c2a8e-3b7d-4c55-9e21-0d8f4a1b2c3d", true},
		{"job_1", true},
		{"", false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"a\tb", false},
		{"ü", false},
		{string(make([]byte, 65)), false},
	}
	for _, tt := range tests {
		err := CheckJob(tt.job)
		if (err == nil) != tt.ok {
			t.Errorf("CheckJob(%q) = %v, want ok=%v", tt.job, err, tt.ok)
		}
	}
}

func TestSubjects(t *testing.T) {
	if got, want := Inbox("j", 3), "gorun.v1.j.p2p.3"; got != want {
		t.Errorf("Inbox = %q, want %q", got, want)
	}
	if got, want := Ready("j"), "gorun.v1.j.ctl.ready"; got != want {
		t.Errorf("Ready = %q, want %q", got, want)
	}
	if got, want := Abort("j"), "gorun.v1.j.ctl.abort"; got != want {
		t.Errorf("Abort = %q, want %q", got, want)
	}
	if got, want := Multicast("j"), "gorun.v1.j.mc"; got != want {
		t.Errorf("Multicast = %q, want %q", got, want)
	}
	job, rank, err := ParseInbox(Inbox("abc", 17))
	if err != nil || job != "abc" || rank != 17 {
		t.Errorf("ParseInbox = %q, %d, %v", job, rank, err)
	}
	for _, bad := range []string{"x.y", "gorun.v1.j.ctl.ready", "gorun.v1.j.p2p.-1", "gorun.v1.j.p2p.x"} {
		if _, _, err := ParseInbox(bad); err == nil {
			t.Errorf("ParseInbox(%q) succeeded", bad)
		}
	}
}
