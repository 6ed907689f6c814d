package collectives

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

// distances returns the round distances of a dissemination over n ranks:
// 1, 2, 4, ... up to the largest power of two below n, or in the opposite
// order when down is set. Every rank r sends to r±s and receives from r∓s in
// the round with distance s, so after all rounds every rank has heard, by
// some path, from every other.
func distances(n int, down bool) []int {
	k := ceilLog2(n)
	ds := make([]int, k)
	for i := range k {
		if down {
			ds[i] = 1 << (k - 1 - i)
		} else {
			ds[i] = 1 << i
		}
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

// downEdge says what the rank at offset d does with data in the round of
// distance s of a dissemination with down distances, which carries the
// binomial tree from the root to the leaves: send its subtree's part for
// offsets [d+s, d+2s) to d+s, or receive its own subtree's data from d-s.
func downEdge(d, s, size int) (send, recv bool) {
	switch d % (2 * s) {
	case 0:
		return d+s < size, false
	case s:
		return false, true
	}
	return false, false
}

// upEdge is downEdge for the rounds of up distances, which carry the tree
// from the leaves to the root: the rank at offset d sends its subtree's data
// to d-s, or receives the subtree of d+s.
func upEdge(d, s, size int) (send, recv bool) {
	switch d % (2 * s) {
	case s:
		return true, false
	case 0:
		return false, d+s < size
	}
	return false, false
}

// rdPlan is one rank's part in a recursive-doubling exchange over size
// ranks. When size is not a power of two, the first 2*rem ranks pair up
// (rem = size - p, p the largest power of two <= size): each even one hands
// its contribution to the odd one above it (fold), sits out the doubling, and
// gets the result back at the end (unfold).
type rdPlan struct {
	fold     int   // the other rank of this rank's pair, or -1
	extra    bool  // this rank sits out the doubling
	partners []int // the doubling partners, in order (nil for an extra rank)
}

// recursiveDoubling returns rank's rdPlan.
func recursiveDoubling(rank, size int) rdPlan {
	p := 1
	for p*2 <= size {
		p *= 2
	}
	rem := size - p
	pl := rdPlan{fold: -1}
	var v int // rank among the p that double
	switch {
	case rank < 2*rem && rank%2 == 0:
		return rdPlan{fold: rank + 1, extra: true}
	case rank < 2*rem:
		pl.fold, v = rank-1, rank/2
	default:
		v = rank - rem
	}
	for s := 1; s < p; s <<= 1 {
		w := v ^ s
		if w < rem {
			pl.partners = append(pl.partners, 2*w+1)
		} else {
			pl.partners = append(pl.partners, w+rem)
		}
	}
	return pl
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

// scanEdge says whether, in the round of distance s of a prefix scan, rank
// sends its partial result to rank+s and receives one from rank-s (the
// dissemination goes on around the ring for the error check, but data only
// moves forward).
func scanEdge(rank, s, n int) (send, recv bool) {
	return rank+s < n, rank-s >= 0
}

func mod(a, n int) int { return ((a % n) + n) % n }
