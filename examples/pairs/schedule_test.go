package main

import (
	"fmt"
	"testing"
)

// TestCircle: every pair meets exactly once, no rank is in two pairs of a
// round, and there are n-1 rounds for even n and n for odd n.
func TestCircle(t *testing.T) {
	for n := 2; n <= 12; n++ {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			rs := circle(n)
			want := n - 1
			if n%2 == 1 {
				want = n
			}
			if len(rs) != want {
				t.Errorf("%d rounds, want %d", len(rs), want)
			}
			met := map[[2]int]int{}
			for i, round := range rs {
				busy := map[int]bool{}
				for _, p := range round {
					if p[0] >= p[1] || p[0] < 0 || p[1] >= n {
						t.Errorf("round %d: bad pair %v", i, p)
					}
					if busy[p[0]] || busy[p[1]] {
						t.Errorf("round %d: a rank of %v is in two pairs", i, p)
					}
					busy[p[0]], busy[p[1]] = true, true
					met[p]++
				}
				if len(round) != n/2 {
					t.Errorf("round %d: %d pairs, want %d", i, len(round), n/2)
				}
			}
			for a := range n {
				for b := a + 1; b < n; b++ {
					if met[[2]int{a, b}] != 1 {
						t.Errorf("pair %d-%d meets %d times", a, b, met[[2]int{a, b}])
					}
				}
			}
			if s := serialRounds(n); len(s) != n*(n-1)/2 {
				t.Errorf("serial: %d rounds, want %d", len(s), n*(n-1)/2)
			}
		})
	}
}

func TestContention(t *testing.T) {
	all := []Pair{
		{A: 0, B: 1, Latency: 100, Bandwidth: 1000, Schedule: "serial"},
		{A: 0, B: 1, Latency: 119, Bandwidth: 700, Schedule: "parallel"},
		{A: 0, B: 2, Latency: 100, Bandwidth: 1000, Schedule: "serial"},
		{A: 0, B: 2, Latency: 150, Bandwidth: 1100, Schedule: "parallel"},
	}
	got := contention(all, 0.2)
	if len(got) != 2 || got[0].Metric != "bandwidth_mbps" || got[0].A != 0 || got[0].B != 1 ||
		got[1].Metric != "latency_us" || got[1].B != 2 || got[1].Change != 0.5 {
		t.Errorf("contention = %+v", got)
	}
}
