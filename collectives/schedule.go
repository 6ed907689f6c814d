package collectives

import "slices"

// The schedules: who sends what to whom at each step. They are pure
// functions of ranks and sizes, tested by tables in schedule_test.go; the
// I/O that follows them lives in the collective's own file.
//
// Ranks in a rooted collective are renumbered relative to the root:
// off = (rank - root) mod size. The binomial tree over offsets has contiguous
// subtrees: offset d's parent is d minus its lowest set bit, its subtree is
// [d, d+lowbit(d)) (the whole of [0, size) for the root), and its children
// are d+s for the powers of two s < lowbit(d), largest first.

// ceilLog2 returns the number of doubling rounds that reach n ranks: the
// smallest k with 1<<k >= n.
func ceilLog2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

// distances returns the round distances of the doubling algorithms over n
// ranks (Bruck's allgather, Hillis and Steele's scan): 1, 2, 4, ... up to
// the largest power of two below n. In a dissemination, every rank r sends
// to r+s and receives from r-s in the round with distance s, so after all
// rounds every rank has heard, by some path, from every other.
func distances(n int) []int {
	ds := make([]int, ceilLog2(n))
	for i := range ds {
		ds[i] = 1 << i
	}
	return ds
}

// offset returns rank's position relative to root.
func offset(rank, root, size int) int { return ((rank-root)%size + size) % size }

// lowbit returns the lowest set bit of d; for d == 0 (the root) it returns
// the smallest power of two >= size, the span of the whole tree.
func lowbit(d, size int) int {
	if d == 0 {
		return 1 << ceilLog2(size)
	}
	return d & -d
}

// binomialTree returns rank's parent (-1 for the root) and its children in
// the order it sends to them (largest subtree first), in the binomial tree
// of size ranks rooted at root.
func binomialTree(rank, root, size int) (parent int, children []int) {
	d := offset(rank, root, size)
	parent = -1
	if d != 0 {
		parent = (d - d&-d + root) % size
	}
	for s := lowbit(d, size) >> 1; s > 0; s >>= 1 {
		if d+s < size {
			children = append(children, (d+s+root)%size)
		}
	}
	return parent, children
}

// subtree returns the offsets [lo, hi) of the ranks in the subtree of the
// rank at offset d.
func subtree(d, size int) (lo, hi int) {
	return d, min(d+lowbit(d, size), size)
}

// starMax is the largest communicator whose agreement tree is a star
// (unless its ranks are on several hosts).
const starMax = 64

// agreeGroups returns where the groups of the agreement tree start, in
// increasing order, the first at 0 (see agreeTree). hosts is, for each
// rank, the lowest rank on its host (mpi.Comm.Hosts), or nil.
//
// On a communicator whose ranks are on several hosts, each host's ranks
// consecutive and some host with more than one, the groups are the hosts:
// then only the group leaders' messages cross hosts, two per host and
// call (one up, one down), and the rest go between ranks of one host,
// through shared memory. Otherwise, up to starMax ranks, one group (a star
// around rank 0: on a bus where every message goes through the server
// anyway, two hops and 2(n-1) messages beat any deeper tree); beyond,
// groups of about sqrt(size) consecutive ranks.
func agreeGroups(size int, hosts []int) []int {
	if len(hosts) == size && size > 1 {
		starts := []int{0}
		ok := hosts[0] == 0
		for r := 1; r < size && ok; r++ {
			switch hosts[r] {
			case hosts[r-1]: // the same host as the rank before
			case r: // the first rank of a host
				starts = append(starts, r)
			default: // a host's ranks are not consecutive
				ok = false
			}
		}
		if ok && len(starts) > 1 && len(starts) < size {
			return starts
		}
	}
	if size <= starMax {
		return []int{0}
	}
	g := 1
	for g*g < size {
		g++
	}
	starts := make([]int, 0, (size+g-1)/g)
	for r := 0; r < size; r += g {
		starts = append(starts, r)
	}
	return starts
}

// agreeTree returns rank's parent (-1 for rank 0, the leader), its children
// in increasing order, and the ranks [lo, hi) of its subtree, in the tree
// that the first phase of every call runs along, of the groups of
// consecutive ranks that start at starts (agreeGroups). Each group's first
// rank leads it; the group leaders, and the rest of group 0, hang off rank
// 0; one group is a star around rank 0. Subtrees are contiguous and
// children come in rank order, so combining up the tree in that order
// combines in rank order.
func agreeTree(rank, size int, starts []int) (parent int, children []int, lo, hi int) {
	end := func(i int) int { // where group i ends
		if i+1 < len(starts) {
			return starts[i+1]
		}
		return size
	}
	i, _ := slices.BinarySearch(starts, rank+1)
	i-- // rank's group: the last that starts at or before it
	lead := starts[i]
	switch {
	case rank == 0:
		for r := 1; r < end(0); r++ {
			children = append(children, r)
		}
		children = append(children, starts[1:]...)
		return -1, children, 0, size
	case rank == lead:
		for r := rank + 1; r < end(i); r++ {
			children = append(children, r)
		}
		return 0, children, rank, end(i)
	}
	return lead, nil, rank, rank + 1
}

// blockCounts cuts total elements into n contiguous blocks whose lengths
// differ by at most one, the longer ones first: 10 over 4 gives 3, 3, 2, 2.
func blockCounts(total, n int) []int {
	counts := make([]int, n)
	for i := range counts {
		counts[i] = total / n
		if i < total%n {
			counts[i]++
		}
	}
	return counts
}

// offsets returns the prefix sums of counts: block i is [o[i], o[i+1]).
func offsets(counts []int) []int {
	o := make([]int, len(counts)+1)
	for i, c := range counts {
		o[i+1] = o[i] + c
	}
	return o
}

// ringReduceScatter returns the blocks rank sends to rank+1 and receives
// (and combines) from rank-1 at step i (0 <= i < n-1) of a ring
// reduce-scatter. After n-1 steps rank owns the reduced block (rank+1) mod n.
func ringReduceScatter(rank, n, i int) (send, recv int) {
	return mod(rank-i, n), mod(rank-i-1, n)
}

// ringAllgather returns the blocks rank sends to rank+1 and receives from
// rank-1 at step i (0 <= i < n-1) of the ring allgather that follows
// ringReduceScatter, starting from rank owning block (rank+1) mod n.
func ringAllgather(rank, n, i int) (send, recv int) {
	return mod(rank+1-i, n), mod(rank-i, n)
}

// bruckCount returns how many blocks move in the round of distance s of a
// Bruck allgather over n ranks: rank r sends blocks r, r+1, ... (mod n) to
// r-s and receives blocks r+s, r+s+1, ... from r+s.
func bruckCount(s, n int) int { return min(s, n-s) }

// scanEdge says whether, in the round of distance s of a prefix scan
// (Hillis and Steele), rank sends its partial result to rank+s and receives
// one from rank-s.
func scanEdge(rank, s, n int) (send, recv bool) {
	return rank+s < n, rank-s >= 0
}

func mod(a, n int) int { return ((a % n) + n) % n }

// isPow2 reports whether n is a power of two.
func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// halvingStep returns, for step i (0 <= i < log2 n) of a reduce-scatter by
// recursive halving over n ranks (a power of two), rank's partner, the
// blocks [sendLo, sendHi) it sends, and the blocks [keepLo, keepHi) it
// keeps and combines the partner's part into. After the last step rank
// owns block rank. The allgather by recursive doubling that follows runs the
// steps backwards, each rank sending what it kept and receiving what it
// sent (Rabenseifner's algorithm).
func halvingStep(rank, n, i int) (partner, sendLo, sendHi, keepLo, keepHi int) {
	lo, hi := 0, n
	for j := 0; ; j++ {
		mask := n >> (j + 1)
		mid := (lo + hi) / 2
		keepLo, keepHi, sendLo, sendHi = lo, mid, mid, hi
		if rank&mask != 0 {
			keepLo, keepHi, sendLo, sendHi = mid, hi, lo, mid
		}
		if j == i {
			return rank ^ mask, sendLo, sendHi, keepLo, keepHi
		}
		lo, hi = keepLo, keepHi
	}
}

// ownedBlock returns the block that rank owns, fully reduced, after the
// reduce-scatter: by recursive halving (n a power of two), or by a ring.
func ownedBlock(rank, n int, halving bool) int {
	if halving {
		return rank
	}
	return mod(rank+1, n)
}
