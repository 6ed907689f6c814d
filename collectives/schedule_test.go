package collectives

import (
	"slices"
	"testing"
)

func TestCeilLog2(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {8, 3}, {9, 4}, {64, 6}} {
		if got := ceilLog2(tt.n); got != tt.want {
			t.Errorf("ceilLog2(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestDistances(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want []int
	}{
		{1, []int{}},
		{2, []int{1}},
		{5, []int{1, 2, 4}},
		{8, []int{1, 2, 4}},
		{9, []int{1, 2, 4, 8}},
	} {
		if got := distances(tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("distances(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

// TestDisseminationReachesAll checks that after the rounds every rank has
// heard from every other, in both directions and orders.
func TestDisseminationReachesAll(t *testing.T) {
	for n := 1; n <= 33; n++ {
		{
			heard := make([]map[int]bool, n)
			for r := range heard {
				heard[r] = map[int]bool{r: true}
			}
			for _, s := range distances(n) {
				next := make([]map[int]bool, n)
				for r := range n {
					next[r] = maps(heard[r])
					for k := range heard[mod(r-s, n)] {
						next[r][k] = true
					}
				}
				heard = next
			}
			for r := range n {
				if len(heard[r]) != n {
					t.Fatalf("n=%d: rank %d heard from %d ranks", n, r, len(heard[r]))
				}
			}
		}
	}
}

func maps(m map[int]bool) map[int]bool {
	c := make(map[int]bool, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestBinomialTree(t *testing.T) {
	for _, tt := range []struct {
		rank, root, size int
		parent           int
		children         []int
	}{
		{0, 0, 1, -1, nil},
		{0, 0, 2, -1, []int{1}},
		{1, 0, 2, 0, nil},
		{0, 0, 8, -1, []int{4, 2, 1}},
		{4, 0, 8, 0, []int{6, 5}},
		{6, 0, 8, 4, []int{7}},
		{7, 0, 8, 6, nil},
		{0, 0, 5, -1, []int{4, 2, 1}},
		{4, 0, 5, 0, nil},
		{2, 0, 5, 0, []int{3}},
		{3, 3, 5, -1, []int{2, 0, 4}}, // offsets 4, 2, 1
		{0, 3, 5, 3, []int{1}},        // offset 2
		{1, 3, 5, 0, nil},             // offset 3
		{2, 2, 3, -1, []int{1, 0}},
		{0, 2, 3, 2, nil},
		{8, 0, 9, 0, nil},
		{0, 0, 9, -1, []int{8, 4, 2, 1}},
	} {
		p, c := binomialTree(tt.rank, tt.root, tt.size)
		if p != tt.parent || !slices.Equal(c, tt.children) {
			t.Errorf("binomialTree(%d, %d, %d) = %d, %v; want %d, %v", tt.rank, tt.root, tt.size, p, c, tt.parent, tt.children)
		}
	}
}

// TestBinomialTreeShape checks, for every size and root, that the tree spans
// every rank once, that parent and children agree, and that each subtree is
// the contiguous range subtree() says.
func TestBinomialTreeShape(t *testing.T) {
	for size := 1; size <= 20; size++ {
		for root := range size {
			seen := 0
			var walk func(r int)
			walk = func(r int) {
				seen++
				_, cs := binomialTree(r, root, size)
				lo, hi := subtree(offset(r, root, size), size)
				n := 1
				for _, c := range cs {
					if p, _ := binomialTree(c, root, size); p != r {
						t.Fatalf("size %d root %d: child %d of %d names parent %d", size, root, c, r, p)
					}
					clo, chi := subtree(offset(c, root, size), size)
					if clo < lo || chi > hi {
						t.Fatalf("size %d root %d: subtree of %d [%d,%d) outside [%d,%d)", size, root, c, clo, chi, lo, hi)
					}
					n += chi - clo
					walk(c)
				}
				if n != hi-lo {
					t.Fatalf("size %d root %d: rank %d covers %d, subtree says %d", size, root, r, n, hi-lo)
				}
			}
			walk(root)
			if seen != size {
				t.Fatalf("size %d root %d: tree has %d ranks", size, root, seen)
			}
		}
	}
}

func TestAgreeTree(t *testing.T) {
	type node struct {
		parent   int
		children []int
		lo, hi   int
	}
	for _, tt := range []struct {
		rank, size int
		want       node
	}{
		{0, 1, node{-1, nil, 0, 1}},
		{0, 4, node{-1, []int{1, 2, 3}, 0, 4}},
		{3, 4, node{0, nil, 3, 4}},
		{5, 64, node{0, nil, 5, 6}},
		{0, 65, node{-1, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 18, 27, 36, 45, 54, 63}, 0, 65}},
		{5, 65, node{0, nil, 5, 6}},
		{9, 65, node{0, []int{10, 11, 12, 13, 14, 15, 16, 17}, 9, 18}},
		{12, 65, node{9, nil, 12, 13}},
		{63, 65, node{0, []int{64}, 63, 65}},
		{64, 65, node{63, nil, 64, 65}},
	} {
		p, c, lo, hi := agreeTree(tt.rank, tt.size, agreeGroups(tt.size, nil))
		got := node{p, c, lo, hi}
		if got.parent != tt.want.parent || !slices.Equal(got.children, tt.want.children) || got.lo != tt.want.lo || got.hi != tt.want.hi {
			t.Errorf("agreeTree(%d, %d) = %+v, want %+v", tt.rank, tt.size, got, tt.want)
		}
	}
}

// TestAgreeTreeShape checks, for every size, with the default groups and
// with hosts of every size from 1 to 9 ranks, that the tree spans every rank
// once, that parents and children agree, and that the children's subtrees
// tile the parent's in rank order right after the parent.
func TestAgreeTreeShape(t *testing.T) {
	for size := 1; size <= 300; size++ {
		groupings := [][]int{agreeGroups(size, nil)}
		for per := 1; per <= 9; per++ {
			groupings = append(groupings, agreeGroups(size, blockHosts(size, per)))
		}
		for _, starts := range groupings {
			checkTreeShape(t, size, starts)
		}
	}
}

// blockHosts is the hosts table (as mpi.Comm.Hosts gives it) of size
// ranks placed per to a host, in rank order.
func blockHosts(size, per int) []int {
	hosts := make([]int, size)
	for r := range hosts {
		hosts[r] = r / per * per
	}
	return hosts
}

func checkTreeShape(t *testing.T, size int, starts []int) {
	t.Helper()
	seen := 0
	var walk func(r int)
	walk = func(r int) {
		seen++
		_, cs, lo, hi := agreeTree(r, size, starts)
		if lo != r {
			t.Fatalf("size %d, groups %v: rank %d's subtree starts at %d", size, starts, r, lo)
		}
		next := r + 1
		for _, c := range cs {
			p, _, clo, chi := agreeTree(c, size, starts)
			if p != r || clo != next {
				t.Fatalf("size %d, groups %v: child %d of %d: parent %d, subtree [%d,%d), want it to start at %d", size, starts, c, r, p, clo, chi, next)
			}
			next = chi
			walk(c)
		}
		if next != hi {
			t.Fatalf("size %d, groups %v: rank %d's children cover up to %d, subtree ends at %d", size, starts, r, next, hi)
		}
	}
	walk(0)
	if seen != size {
		t.Fatalf("size %d, groups %v: tree has %d ranks", size, starts, seen)
	}
}

// TestAgreeGroups: the groups are the hosts when each host's ranks are
// consecutive and the ranks are on several hosts, not all alone; else the
// default (a star, or sqrt groups past starMax). On hosts, the only edges
// of the tree between ranks of different hosts are a leader's to rank 0:
// two messages per host and call.
func TestAgreeGroups(t *testing.T) {
	for _, tc := range []struct {
		hosts []int
		want  []int
	}{
		{nil, []int{0}},
		{[]int{0}, []int{0}},
		{[]int{0, 0, 0, 0}, []int{0}},                                   // one host: a star
		{[]int{0, 1, 2, 3}, []int{0}},                                   // every rank alone: a star
		{[]int{0, 0, 2, 2, 4, 4}, []int{0, 2, 4}},                       // three hosts of two
		{[]int{0, 0, 0, 3, 4, 4}, []int{0, 3, 4}},                       // hosts of 3, 1 and 2
		{[]int{0, 1, 0, 1}, []int{0}},                                   // round robin: not consecutive
		{[]int{0, 0, 2, 2, 0}, []int{0}},                                // a host's ranks in two runs
		{blockHosts(starMax+6, starMax+6), agreeGroups(starMax+6, nil)}, // one host past starMax: sqrt groups
	} {
		if got := agreeGroups(len(tc.hosts), tc.hosts); !slices.Equal(got, tc.want) {
			t.Errorf("agreeGroups(%v) = %v, want %v", tc.hosts, got, tc.want)
		}
	}
	// 64 ranks on 4 hosts: 6 messages of a call cross hosts, not 48 + 1.
	const size, per = 64, 16
	hosts := blockHosts(size, per)
	starts := agreeGroups(size, hosts)
	crossing := 0
	for r := range size {
		if p, _, _, _ := agreeTree(r, size, starts); p >= 0 && hosts[p] != hosts[r] {
			crossing += 2 // up and down
		}
	}
	if want := 2 * (size/per - 1); crossing != want {
		t.Errorf("%d ranks on %d hosts: %d messages cross hosts per call, want %d", size, size/per, crossing, want)
	}
}

func TestBlockCounts(t *testing.T) {
	for _, tt := range []struct {
		total, n int
		want     []int
	}{
		{10, 4, []int{3, 3, 2, 2}},
		{8, 4, []int{2, 2, 2, 2}},
		{3, 5, []int{1, 1, 1, 0, 0}},
		{0, 3, []int{0, 0, 0}},
		{7, 1, []int{7}},
	} {
		got := blockCounts(tt.total, tt.n)
		if !slices.Equal(got, tt.want) {
			t.Errorf("blockCounts(%d, %d) = %v, want %v", tt.total, tt.n, got, tt.want)
		}
		if o := offsets(got); o[len(o)-1] != tt.total {
			t.Errorf("offsets(%v) ends at %d, want %d", got, o[len(o)-1], tt.total)
		}
	}
}

// TestRing simulates the ring reduce-scatter and allgather with sets.
func TestRing(t *testing.T) {
	for n := 1; n <= 12; n++ {
		// have[r][b]: the ranks whose contribution rank r holds for block b.
		have := make([][]map[int]bool, n)
		for r := range n {
			have[r] = make([]map[int]bool, n)
			for b := range n {
				have[r][b] = map[int]bool{r: true}
			}
		}
		for i := 0; i < n-1; i++ {
			var moves [][3]int // from, to, block
			for r := range n {
				s, _ := ringReduceScatter(r, n, i)
				_, rv := ringReduceScatter(mod(r+1, n), n, i)
				if s != rv {
					t.Fatalf("n %d step %d: %d sends block %d, %d expects %d", n, i, r, s, r+1, rv)
				}
				moves = append(moves, [3]int{r, mod(r+1, n), s})
			}
			for _, m := range moves {
				for k := range have[m[0]][m[2]] {
					have[m[1]][m[2]][k] = true
				}
			}
		}
		for r := range n {
			if b := mod(r+1, n); len(have[r][b]) != n {
				t.Fatalf("n %d: rank %d block %d has %d contributions", n, r, b, len(have[r][b]))
			}
		}
		owned := make([]map[int]bool, n) // blocks complete at each rank
		for r := range n {
			owned[r] = map[int]bool{mod(r+1, n): true}
		}
		for i := 0; i < n-1; i++ {
			var moves [][3]int
			for r := range n {
				s, _ := ringAllgather(r, n, i)
				_, rv := ringAllgather(mod(r+1, n), n, i)
				if s != rv || !owned[r][s] {
					t.Fatalf("n %d step %d: %d sends block %d (owned %t), %d expects %d", n, i, r, s, owned[r][s], r+1, rv)
				}
				moves = append(moves, [3]int{r, mod(r+1, n), s})
			}
			for _, m := range moves {
				owned[m[1]][m[2]] = true
			}
		}
		for r := range n {
			if len(owned[r]) != n {
				t.Fatalf("n %d: rank %d ends with %d blocks", n, r, len(owned[r]))
			}
		}
	}
}

// TestBruck simulates the Bruck allgather: every rank ends with all blocks.
func TestBruck(t *testing.T) {
	for n := 1; n <= 20; n++ {
		have := make([][]int, n) // have[r]: blocks r, r+1, ... in order
		for r := range n {
			have[r] = []int{r}
		}
		for _, s := range distances(n) {
			k := bruckCount(s, n)
			next := slices.Clone(have)
			for r := range n {
				from := mod(r+s, n)
				if len(have[from]) < k {
					t.Fatalf("n %d s %d: rank %d has %d blocks, must send %d", n, s, from, len(have[from]), k)
				}
				next[r] = append(slices.Clone(have[r]), have[from][:k]...)
			}
			have = next
		}
		for r := range n {
			want := make([]int, n)
			for i := range want {
				want[i] = mod(r+i, n)
			}
			if !slices.Equal(have[r], want) {
				t.Fatalf("n %d: rank %d has %v, want %v", n, r, have[r], want)
			}
		}
	}
}

// TestScanEdges simulates the scan: rank r ends with ranks 0..r, once each.
func TestScanEdges(t *testing.T) {
	for n := 1; n <= 20; n++ {
		have := make([][]int, n)
		for r := range n {
			have[r] = []int{r}
		}
		for _, s := range distances(n) {
			next := slices.Clone(have)
			for r := range n {
				send, _ := scanEdge(r, s, n)
				_, recv := scanEdge(mod(r+s, n), s, n)
				if send != (recv && r+s < n) {
					t.Fatalf("n %d s %d: send %t recv %t", n, s, send, recv)
				}
				if _, recv := scanEdge(r, s, n); recv {
					next[r] = append(slices.Clone(have[r-s]), have[r]...)
				}
			}
			have = next
		}
		for r := range n {
			want := make([]int, r+1)
			for i := range want {
				want[i] = i
			}
			if !slices.Equal(have[r], want) {
				t.Fatalf("n %d: rank %d has %v", n, r, have[r])
			}
		}
	}
}

// TestHalving simulates the recursive halving and doubling with sets.
func TestHalving(t *testing.T) {
	for _, n := range []int{1, 2, 4, 8, 16, 32} {
		have := make([][]map[int]bool, n) // have[r][b]: contributions to block b at r
		for r := range n {
			have[r] = make([]map[int]bool, n)
			for b := range n {
				have[r][b] = map[int]bool{r: true}
			}
		}
		steps := ceilLog2(n)
		for i := range steps {
			next := make([][]map[int]bool, n)
			for r := range n {
				next[r] = make([]map[int]bool, n)
				for b := range n {
					next[r][b] = maps(have[r][b])
				}
			}
			for r := range n {
				p, _, _, klo, khi := halvingStep(r, n, i)
				pp, pslo, pshi, _, _ := halvingStep(p, n, i)
				if pp != r || pslo != klo || pshi != khi {
					t.Fatalf("n %d step %d: %d keeps [%d,%d), partner %d sends [%d,%d)", n, i, r, klo, khi, p, pslo, pshi)
				}
				for b := klo; b < khi; b++ {
					for k := range have[p][b] {
						next[r][b][k] = true
					}
				}
			}
			have = next
		}
		for r := range n {
			if b := ownedBlock(r, n, true); len(have[r][b]) != n {
				t.Fatalf("n %d: rank %d block %d has %d contributions", n, r, b, len(have[r][b]))
			}
		}
		owned := make([]map[int]bool, n)
		for r := range n {
			owned[r] = map[int]bool{r: true}
		}
		for i := steps - 1; i >= 0; i-- {
			next := make([]map[int]bool, n)
			for r := range n {
				p, slo, shi, klo, khi := halvingStep(r, n, i)
				for b := klo; b < khi; b++ {
					if !owned[r][b] {
						t.Fatalf("n %d step %d: rank %d sends block %d it lacks", n, i, r, b)
					}
				}
				next[r] = maps(owned[r])
				for b := slo; b < shi; b++ {
					if !owned[p][b] {
						t.Fatalf("n %d step %d: partner %d lacks block %d", n, i, p, b)
					}
					next[r][b] = true
				}
			}
			owned = next
		}
		for r := range n {
			if len(owned[r]) != n {
				t.Fatalf("n %d: rank %d ends with %d blocks", n, r, len(owned[r]))
			}
		}
	}
}
