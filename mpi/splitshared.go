package mpi

import "context"

// hostKey names a rank's host as the rest of mpi tells hosts apart: the
// machine and PID namespace (hostIdentity, what single copies check) and
// the shared-memory segment it opened (what the rings check). Ranks that
// gorun starts on one host share both; two test hosts on one machine, in
// namespaces of their own, differ in both.
type hostKey struct{ host, seg uint64 }

// known reports whether k names a host at all: a rank with neither a host
// identity nor a segment (on a system where mpi cannot tell) is a host of
// its own.
func (k hostKey) known() bool { return k.host != 0 || k.seg != 0 }

// hostKeys returns the host of each rank of c, in rank order, from what
// every rank announced at start-up (the same table on every rank).
func (c *Comm) hostKeys() []hostKey {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := make([]hostKey, c.Size())
	for r := range keys {
		h := e.peerInfo[c.worldRank(r)]
		keys[r] = hostKey{h.host, h.shm.seg}
	}
	return keys
}

// hostsOf is, for each rank of keys, the first rank of its host, so that
// every rank of one host computes the same number (its color in
// SplitShared) from the same table, and ranks of different hosts different
// ones. A rank whose host is not known is alone.
func hostsOf(keys []hostKey) []int {
	first := make(map[hostKey]int, len(keys))
	hosts := make([]int, len(keys))
	for r, k := range keys {
		hosts[r] = r
		if !k.known() {
			continue
		}
		if f, ok := first[k]; ok {
			hosts[r] = f
		} else {
			first[k] = r
		}
	}
	return hosts
}

// Hosts tells which ranks of c share a host: for each rank of c, in rank
// order, the lowest rank of c on the same host, so that ranks with equal
// entries share one (SplitShared would put them in one communicator; a
// host as SplitShared tells them apart). Every rank computes the same
// table from what the ranks announced at Init: Hosts sends nothing, and
// every rank of c gets the same answer. Hierarchical algorithms use it to
// keep most messages between ranks of one host.
func (c *Comm) Hosts() []int { return hostsOf(c.hostKeys()) }

// SplitShared returns the ranks of c on this rank's host, ranked in their
// order in c, as MPI_Comm_split_type with MPI_COMM_TYPE_SHARED. A host is
// what mpi itself tells apart for shared memory and single copies: the
// machine and PID namespace and the shared-memory segment the ranks map,
// so ranks that gorun starts on one host are one group, and ranks in
// namespaces of their own on one machine are not. Where mpi cannot tell
// (no host identity and no segment, as off Linux), a rank is alone. Every
// rank of c must call it; each computes its host's color from what every
// rank announced at Init, and Split does the rest.
func (c *Comm) SplitShared(ctx context.Context) (*Comm, error) {
	if ctx == nil {
		return nil, nilContext("splitshared")
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.Split(ctx, c.Hosts()[c.rank], c.rank)
}
