package mpi

import (
	"slices"
	"testing"
)

// TestHostsOf: each rank's host (its color in SplitShared) is the first
// rank of its host, and a rank whose host mpi cannot tell is alone.
func TestHostsOf(t *testing.T) {
	a, b, c := hostKey{host: 7, seg: 1}, hostKey{host: 7, seg: 3}, hostKey{host: 9, seg: 1}
	noShm := hostKey{host: 7}
	unknown := hostKey{}
	for _, tc := range []struct {
		keys []hostKey
		want []int
	}{
		{[]hostKey{a}, []int{0}},
		{[]hostKey{a, a, a}, []int{0, 0, 0}},
		{[]hostKey{a, b, a, b}, []int{0, 1, 0, 1}},       // one machine, two segments: two hosts (namespaces)
		{[]hostKey{a, c, c, a}, []int{0, 1, 1, 0}},       // one segment id, two machines: two hosts
		{[]hostKey{noShm, noShm, a}, []int{0, 0, 2}},     // no segments (shm off): the machine decides
		{[]hostKey{unknown, unknown, a}, []int{0, 1, 2}}, // no identity at all: alone
		{[]hostKey{b, a, unknown, a, b}, []int{0, 1, 2, 1, 0}},
	} {
		if got := hostsOf(tc.keys); !slices.Equal(got, tc.want) {
			t.Errorf("hosts of %v = %v, want %v", tc.keys, got, tc.want)
		}
	}
}
