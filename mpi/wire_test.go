package mpi

import "testing"

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{kind: kEager, src: 0, comm: 0, tag: 0},
		{kind: kRTS, src: 63, comm: 1<<64 - 2, tag: MaxTag, id: 1<<64 - 1, n: 100 << 20},
		{kind: kCTS, src: 5, comm: 1, tag: 7, id: 3, n: 2 << 20},
	} {
		b := make([]byte, hdrLen)
		putHeader(b, h)
		got, err := parseHeader(b)
		if err != nil || got != h {
			t.Errorf("round trip of %+v: %+v, %v", h, got, err)
		}
	}
	if _, err := parseHeader(make([]byte, hdrLen-1)); err == nil {
		t.Error("a short frame parsed")
	}
}

func TestTokens(t *testing.T) {
	tok := makeToken(tokChunk, 12, 1<<63, 3<<20)
	if tok != "c.12.9223372036854775808.3145728" {
		t.Errorf("token %q", tok)
	}
	kind, src, a, b, ok := parseToken(tok)
	if !ok || kind != tokChunk || src != 12 || a != 1<<63 || b != 3<<20 {
		t.Errorf("parseToken(%q) = %c %d %d %d %v", tok, kind, src, a, b, ok)
	}
	for _, bad := range []string{"", "c", "c.", "c.1.2", "c.1.2.x", "c.-1.2.3", "c.1.-2.3", "c.1.2.-3", "_INBOX.abc.def", "cc.1.2.3"} {
		if _, _, _, _, ok := parseToken(bad); ok {
			t.Errorf("parseToken(%q) accepted", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("e.1.2.3")
	f.Add("c.0.0.0")
	f.Fuzz(func(t *testing.T, s string) {
		kind, src, a, b, ok := parseToken(s)
		if !ok {
			return
		}
		if got := makeToken(kind, src, a, b); got != s {
			// Not every accepted form is canonical (leading zeros, '+'),
			// but what it makes must parse back to the same values.
			k2, s2, a2, b2, ok2 := parseToken(got)
			if !ok2 || k2 != kind || s2 != src || a2 != a || b2 != b {
				t.Errorf("%q -> %q does not round trip", s, got)
			}
		}
	})
}
