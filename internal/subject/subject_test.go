package subject

import (
	"strings"
	"testing"
)

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
	for _, tt := range []struct{ got, want string }{
		{Inbox("j", 3, 5), "gorun.v1.j.p2p.3.5"},
		{InboxPrefix("j", 3), "gorun.v1.j.p2p.3."},
		{InboxAll("j", 3), "gorun.v1.j.p2p.3.*"},
		{Ready("j", 2), "gorun.v1.j.ctl.ready.2"},
		{ReadyPrefix("j"), "gorun.v1.j.ctl.ready."},
		{ReadyAll("j"), "gorun.v1.j.ctl.ready.*"},
		{ReplyPrefix("j", 2), "gorun.v1.j.ctl.reply.2"},
		{Abort("j", 1), "gorun.v1.j.ctl.abort.1"},
		{AbortPrefix("j"), "gorun.v1.j.ctl.abort."},
		{AbortAll("j"), "gorun.v1.j.ctl.abort.*"},
		{Multicast("j", 4), "gorun.v1.j.mc.4"},
		{MulticastPrefix("j"), "gorun.v1.j.mc."},
		{MulticastAll("j"), "gorun.v1.j.mc.*"},
		{Reach("j", 3, 5), "gorun.v1.j.ctl.reach.3.5"},
		{ReachPrefix("j", 3), "gorun.v1.j.ctl.reach.3."},
		{ReachAll("j", 3), "gorun.v1.j.ctl.reach.3.*"},
		{Reached("j", 5, 3), "gorun.v1.j.ctl.reached.5.3"},
		{ReachedPrefix("j", 5), "gorun.v1.j.ctl.reached.5."},
		{ReachedAll("j", 5), "gorun.v1.j.ctl.reached.5.*"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	job, dst, src, err := ParseInbox(Inbox("abc", 17, 3))
	if err != nil || job != "abc" || dst != 17 || src != 3 {
		t.Errorf("ParseInbox = %q, %d, %d, %v", job, dst, src, err)
	}
	for _, bad := range []string{"x.y", "gorun.v1.j.ctl.ready.1", "gorun.v1.j.p2p.-1.0", "gorun.v1.j.p2p.x.1", "gorun.v1.j.p2p.1"} {
		if _, _, _, err := ParseInbox(bad); err == nil {
			t.Errorf("ParseInbox(%q) succeeded", bad)
		}
	}
}

func TestSender(t *testing.T) {
	p := InboxPrefix("j", 0)
	for _, tt := range []struct {
		subj string
		r    int
		ok   bool
	}{
		{p + "0", 0, true}, {p + "7", 7, true}, {p + "8", 0, false}, {p + "", 0, false},
		{p + "01", 0, false}, {p + "-1", 0, false}, {p + "+1", 0, false}, {p + "1.2", 0, false},
		{p + "99999999999999999999", 0, false}, {"gorun.v1.k.p2p.0.1", 0, false},
	} {
		r, ok := Sender(tt.subj, p, 8)
		if ok != tt.ok || (ok && r != tt.r) {
			t.Errorf("Sender(%q) = %d, %v, want %d, %v", tt.subj, r, ok, tt.r, tt.ok)
		}
	}
}

// Each rank may publish only as itself and subscribe only to its own inbox
// and replies and the job's shared subjects.
func TestPermissions(t *testing.T) {
	pub, sub := Permissions("j", 2)
	want := func(list []string, s string) {
		t.Helper()
		for _, x := range list {
			if x == s {
				return
			}
		}
		t.Errorf("%q not in %q", s, list)
	}
	want(pub, "gorun.v1.j.p2p.*.2")
	want(pub, "gorun.v1.j.mc.2")
	want(pub, "gorun.v1.j.ctl.abort.2")
	want(pub, "gorun.v1.j.ctl.ready.2")
	want(sub, "gorun.v1.j.p2p.2.*")
	want(sub, "gorun.v1.j.mc.*")
	want(sub, "gorun.v1.j.ctl.abort.*")
	want(sub, "gorun.v1.j.ctl.reply.2.>")
	want(pub, "gorun.v1.j.ctl.reach.*.2")
	want(pub, "gorun.v1.j.ctl.reached.*.2")
	want(sub, "gorun.v1.j.ctl.reach.2.*")
	want(sub, "gorun.v1.j.ctl.reached.2.*")
	for _, s := range append(pub, sub...) {
		if strings.Contains(s, "ready.*") || strings.Contains(s, "reply.*") {
			t.Errorf("rank 2 may use %q", s)
		}
	}
	pub0, sub0 := Permissions("j", 0)
	want(pub0, "gorun.v1.j.ctl.reply.*.>")
	want(sub0, "gorun.v1.j.ctl.ready.*")
}
