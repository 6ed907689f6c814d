package mpi

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/gorun-hpc/gorun/internal/contract"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// AnySource and AnyTag match a message from any rank, with any tag, on
// receive and probe.
const (
	AnySource = -1
	AnyTag    = -1
)

// MaxTag is the largest tag a message may carry. Tags are in [0, MaxTag].
const MaxTag = math.MaxInt32

// Status describes a received or probed message. Unlike MPI (and mpi4py,
// which counts elements), Count is always in bytes: divide by the element
// size for a SendSlice message. From ProcNull: Source ProcNull, Tag AnyTag,
// Count 0.
type Status struct {
	Source int // the sender's rank in the communicator
	Tag    int
	Count  int // bytes
}

// Comm is a communicator: a group of ranks with a private context, so that
// messages on one Comm never match receives on another. The world Comm comes
// from Init; Split and Dup make others. A Comm is safe for concurrent use.
type Comm struct {
	e     *engine
	id    uint64      // context id of user messages; id|1 is the internal context
	rank  int         // this rank in the communicator
	group []int       // communicator rank -> world rank; nil for the world
	index map[int]int // world rank -> communicator rank; nil for the world
	name  string      // in the hang report: "" for the world, else its parent's name and how it was made ("world/dup1")
	quiet bool        // a collectives' shadow: its calls and messages are not the program's (not traced)

	closed  atomic.Bool
	derived atomic.Uint64 // communicators derived from this one so far
	agreed  atomic.Uint64 // Agree (and Shrink) calls on it so far
}

// Rank returns this process's rank in the communicator, in [0, Size()).
func (c *Comm) Rank() int { return c.rank }

// Size returns the number of ranks in the communicator.
func (c *Comm) Size() int {
	if c.group == nil {
		return c.e.size
	}
	return len(c.group)
}

func (c *Comm) worldRank(r int) int {
	if c.group == nil {
		return r
	}
	return c.group[r]
}

func (c *Comm) commRank(world int) int {
	if c.group == nil {
		return world
	}
	if r, ok := c.index[world]; ok {
		return r
	}
	return -1
}

func (c *Comm) internal() uint64 { return c.id | 1 }

// label is c's name in the hang report.
func (c *Comm) label() string {
	if c.name == "" {
		return "world"
	}
	return c.name
}

func init() {
	blocked.CommInfo = func(comm any) (string, []int) {
		c := comm.(*Comm)
		return c.label(), c.group
	}
	blocked.QuietComm = func(comm any) { comm.(*Comm).quiet = true }
}

// check returns the error that stops an operation on c before it begins.
func (c *Comm) check() error {
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Err returns the error that would stop an operation on c now: ErrClosed
// once c is closed, the job's failure (an error wrapping ErrConnLost, or an
// *AbortError) once one is known, and nil while c is usable. It does not
// block and sends nothing.
func (c *Comm) Err() error {
	if err := c.check(); err != nil {
		return err
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.e.err
}

// Multicast reports whether SendAll on c is one publish that the bus fans
// out to every other rank: c spans the whole world, the world has more than
// two ranks, the Multicast option is on, and no two ranks of the world
// share a host's shared memory (there SendAll over the rings is faster).
// Otherwise SendAll sends to each rank in turn. Every rank of c gives the
// same answer, if every rank was given the same options.
func (c *Comm) Multicast() bool {
	return c.e.multicast() && c.Size() == c.e.size
}

// checkRank checks a point-to-point peer: a rank of c, or ProcNull, or
// (anyOK, for a receive) AnySource. Callers handle ProcNull themselves.
func (c *Comm) checkRank(op string, r int, anyOK bool) error {
	if (anyOK && r == AnySource) || r == ProcNull || (r >= 0 && r < c.Size()) {
		return nil
	}
	return errorf("mpi: %s: rank %d not in [0, %d): %w", op, r, c.Size(), ErrRank)
}

func checkTag(op string, tag int, anyOK bool) error {
	if (anyOK && tag == AnyTag) || (tag >= 0 && tag <= MaxTag) {
		return nil
	}
	return errorf("mpi: %s: tag %d not in [0, %d]: %w", op, tag, MaxTag, ErrTag)
}

// Close leaves the communicator. On the world communicator it waits (up to
// the CloseTimeout option) for sends still in flight, fails the operations
// still blocked with ErrClosed, and disconnects from the bus; on any other it
// only frees the communicator. Close is safe to call more than once.
func (c *Comm) Close() error {
	if c.closed.Swap(true) || c.id != 0 {
		return nil
	}
	err := c.e.close()
	if c.e.reports {
		reportTrace(false)
		reportStats(c.e.statistics())
		report(contract.ReportClose, 0)
	}
	return err
}

// statistics is what this rank did so far, for gorun --stats.
func (e *engine) statistics() blocked.Stats {
	e.mu.Lock()
	st := e.traffic
	e.mu.Unlock()
	st.Ops = blocked.Ops()
	st.BusFrames, st.BusBytes = e.paths.busFrames.Load(), e.paths.busBytes.Load()
	st.RingFrames, st.RingBytes = e.paths.ringFrames.Load(), e.paths.ringBytes.Load()
	st.CopyBytes = e.paths.copyBytes.Load()
	return st
}

func (e *engine) close() error {
	idle := e.waitIdle(e.opts.CloseTimeout)
	e.mu.Lock()
	if e.tr != nil && e.err == nil {
		e.sayBye()
	}
	e.closing = true
	n := e.inflight
	e.failAll(ErrClosed)
	e.mu.Unlock()
	if e.tr != nil {
		e.tr.close(5 * time.Second)
		joined.remove(e.joinKey())
	}
	if !idle {
		return fmt.Errorf("mpi: close: %d sends still unreceived after %v", n, e.opts.CloseTimeout)
	}
	return nil
}

// Abort ends the whole job with code: it tells every other rank (whose
// blocked and later operations fail with an *AbortError wrapping ErrAborted;
// under gorun they exit too), prints a line on stderr, and exits. It does
// not return. The exit status, the rank's and gorun's, is code when it is 1
// to 255, and 1 for any other code (an exit status is one byte, and an
// aborted job must never look successful); the line and gorun's message
// name the code as given.
func (c *Comm) Abort(code int) {
	status := contract.AbortStatus(code)
	e := c.e
	world := c.worldRank(c.rank)
	if status == code {
		fmt.Fprintf(os.Stderr, "mpi: rank %d aborted the job with code %d\n", world, code)
	} else {
		fmt.Fprintf(os.Stderr, "mpi: rank %d aborted the job with code %d (exit status %d)\n", world, code, status)
	}
	if e.reports {
		report(contract.ReportAbort, code)
	}
	if e.tr != nil {
		e.tr.abort(status, time.Second)
	}
	e.mu.Lock()
	e.failAll(&AbortError{Rank: world, Code: status})
	e.mu.Unlock()
	if e.opts.AbortFunc != nil {
		e.opts.AbortFunc(status)
	}
	os.Exit(status)
}

func abortPayload(rank, code int) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, uint32(rank))
	binary.LittleEndian.PutUint32(b[4:], uint32(int32(code)))
	return b
}

func parseAbort(b []byte) (rank, code int, ok bool) {
	if len(b) != 8 {
		return 0, 0, false
	}
	return int(binary.LittleEndian.Uint32(b)), int(int32(binary.LittleEndian.Uint32(b[4:]))), true
}

// Dup returns a new communicator with the same ranks in the same order and a
// context of its own: messages on it never match receives on c, and the
// other way round. Every rank of c must call Dup (or Split) on c in the same
// order; Dup itself sends nothing.
func (c *Comm) Dup(ctx context.Context) (*Comm, error) {
	if ctx == nil {
		return nil, nilContext("dup")
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errorf("mpi: dup: %w", err)
	}
	seq := c.derived.Add(1)
	d := &Comm{e: c.e, id: deriveID(c.id, seq, -2), rank: c.rank, group: c.group, index: c.index, name: c.label() + "/dup" + strconv.FormatUint(seq, 10), quiet: c.quiet}
	if sp := c.span(ctx); sp.t != nil {
		sp.end(c, "Dup", blocked.None, 0, 0)
	}
	return d, nil
}

// splitTag is the internal tag of Split's exchange.
const splitTag = 1

// Split partitions c: ranks that pass the same color form a new
// communicator, ranked by key (ties broken by rank in c). A rank that passes
// a negative color joins none and gets a nil Comm. Every rank of c must call
// it. It blocks until rank 0 of c has heard from every rank.
func (c *Comm) Split(ctx context.Context, color, key int) (*Comm, error) {
	if ctx == nil {
		return nil, nilContext("split")
	}
	opSplit.Count(ctx)
	defer c.span(ctx).end(c, "Split", blocked.None, 0, 0)
	if err := c.check(); err != nil {
		return nil, err
	}
	seq := c.derived.Add(1)
	n := c.Size()
	table := make([]byte, 16*n)
	binary.LittleEndian.PutUint64(table[16*c.rank:], uint64(int64(color)))
	binary.LittleEndian.PutUint64(table[16*c.rank+8:], uint64(int64(key)))
	cid := c.internal()
	if c.rank == 0 {
		for r := 1; r < n; r++ {
			b, _, err := c.recv(ctx, "split", cid, r, splitTag)
			if err != nil {
				return nil, err
			}
			if len(b) != 16 {
				return nil, fmt.Errorf("mpi: split: rank %d sent %d bytes, want 16", r, len(b))
			}
			copy(table[16*r:], b)
		}
		reqs := make([]*Request, 0, n-1)
		for r := 1; r < n; r++ {
			reqs = append(reqs, c.isend("split", cid, r, splitTag, table))
		}
		if err := WaitAll(ctx, reqs...); err != nil {
			return nil, err
		}
	} else {
		if err := c.send(ctx, "split", cid, 0, splitTag, table[16*c.rank:16*c.rank+16]); err != nil {
			return nil, err
		}
		b, _, err := c.recv(ctx, "split", cid, 0, splitTag)
		if err != nil {
			return nil, err
		}
		if len(b) != len(table) {
			return nil, fmt.Errorf("mpi: split: rank 0 sent %d bytes, want %d", len(b), len(table))
		}
		table = b
	}
	if color < 0 {
		return nil, nil
	}
	type member struct{ key, rank int }
	var members []member
	for r := range n {
		col := int(int64(binary.LittleEndian.Uint64(table[16*r:])))
		if col == color {
			members = append(members, member{int(int64(binary.LittleEndian.Uint64(table[16*r+8:]))), r})
		}
	}
	slices.SortStableFunc(members, func(a, b member) int {
		if a.key != b.key {
			return cmpInt(a.key, b.key)
		}
		return cmpInt(a.rank, b.rank)
	})
	d := &Comm{e: c.e, id: deriveID(c.id, seq, color), group: make([]int, len(members)), index: make(map[int]int, len(members)), name: c.label() + "/split" + strconv.FormatUint(seq, 10)}
	for i, m := range members {
		w := c.worldRank(m.rank)
		d.group[i] = w
		d.index[w] = i
		if m.rank == c.rank {
			d.rank = i
		}
	}
	return d, nil
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deriveID names the seq-th communicator derived from parent, for color:
// every member computes the same id without talking. Ids are even; id|1 is
// the communicator's internal context.
func deriveID(parent, seq uint64, color int) uint64 {
	h := fnv.New64a()
	var b [24]byte
	binary.LittleEndian.PutUint64(b[:], parent)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(int64(color)))
	h.Write(b[:])
	id := h.Sum64() &^ 1
	if id == 0 {
		id = 2
	}
	return id
}
