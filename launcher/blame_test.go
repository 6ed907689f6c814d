package launcher

import "testing"

// TestBlameChain: blame follows each failed rank's first lost peer while
// that peer failed too, waits for one that has not ended, and keeps the
// blame where a peer left cleanly, or where a report is out of range or
// makes a cycle.
func TestBlameChain(t *testing.T) {
	lost := func(rank, code int, peers ...int) rankExit {
		return rankExit{Rank: rank, Code: code, Report: rankReport{Lost: peers}}
	}
	for _, tc := range []struct {
		name  string
		x     rankExit
		ended []rankExit
		root  int
		wait  int
	}{
		{"no lost peer", lost(1, 1), nil, 1, -1},
		{"peer still running", lost(0, 1, 2), nil, 0, 2},
		{"peer failed", lost(0, 1, 2), []rankExit{lost(2, 2)}, 2, -1},
		{"peer left cleanly", lost(0, 1, 2), []rankExit{lost(2, 0)}, 0, -1},
		{"chain", lost(0, 1, 1), []rankExit{lost(1, 1, 3), lost(3, 7)}, 3, -1},
		{"chain waits", lost(0, 1, 1), []rankExit{lost(1, 1, 3)}, 1, 3},
		{"first lost counts", lost(0, 1, 2, 1), []rankExit{lost(1, 5), lost(2, 0)}, 0, -1},
		{"cycle", lost(0, 1, 1), []rankExit{lost(1, 1, 0)}, 1, -1},
		{"out of range", lost(0, 1, 9), nil, 0, -1},
		{"not started", lost(0, 1, 2), []rankExit{{Rank: 2, NotStarted: true}}, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ended := map[int]rankExit{tc.x.Rank: tc.x}
			for _, e := range tc.ended {
				ended[e.Rank] = e
			}
			root, wait := blame(tc.x, ended, 4)
			if root.Rank != tc.root || wait != tc.wait {
				t.Errorf("blame = rank %d, wait %d; want rank %d, wait %d", root.Rank, wait, tc.root, tc.wait)
			}
		})
	}
}
