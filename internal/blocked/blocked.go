// Package blocked keeps what a rank's goroutines are blocked in, so that
// gorun can say, when a job hangs, which rank waits in which call for whom.
//
// Package mpi enters a call when a blocking operation finds it must wait
// (never on the fast path), and collectives enters each collective call as
// itself and hides the messages inside it (Quiet): as it begins, but
// taking its stack only if it blocks (EnterLazy, QuietFor, Parking). A rank started by gorun
// answers gorun's question on its control descriptor with a State; gorun
// prints one line per rank (Line) and the verdict (Verdict). The package
// imports only the standard library, so the launcher uses it without
// linking package mpi.
package blocked

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// Peer, Tag and Root values that are not ranks or tags.
const (
	Any  = -1 // any source, any tag
	None = -2 // the call has no such argument
)

// Call is one blocking call in progress on a rank.
type Call struct {
	Op        string        `json:"op"`              // Recv, Send, Wait, Barrier...
	Coll      bool          `json:"coll,omitempty"`  // a collective: Peer and Tag are None
	Send      bool          `json:"send,omitempty"`  // the wait is for a send to complete
	Comm      string        `json:"comm"`            // the communicator's name (world, world/dup1...)
	Group     []int         `json:"group,omitempty"` // its members' world ranks by communicator rank; nil: the world
	Peer      int           `json:"peer"`            // the communicator rank waited on, Any or None
	PeerWorld int           `json:"peerw"`           // the same as a world rank
	Tag       int           `json:"tag"`             // a tag, Any or None
	Root      int           `json:"root"`            // a collective's root, or None
	Bytes     int           `json:"bytes"`           // a send's size; -1 when unknown
	Seq       uint32        `json:"seq,omitempty"`   // a collective's number on its communicator
	For       time.Duration `json:"for"`             // how long it has been blocked, at the snapshot
	Site      string        `json:"site,omitempty"`  // file:line of the caller's call, outside gorun's packages
}

// State is what a rank says of itself when gorun asks.
type State struct {
	Inited   bool          `json:"inited"`
	Closed   bool          `json:"closed"`
	Calls    []Call        `json:"calls"`
	More     int           `json:"more,omitempty"` // calls left out of Calls (it holds at most MaxCalls)
	Progress uint64        `json:"progress"`       // calls ended and frames handled so far
	CPU      time.Duration `json:"cpu"`            // the process's CPU time so far
}

// MaxCalls bounds State.Calls.
const MaxCalls = 32

// entry is a Call in the registry.
type entry struct {
	c     Call
	since time.Duration // when it began to block: mono(); 0 for a lazy entry until Parking
	pcs   [24]uintptr
	npc   int
	gen   uint64 // which Enter made it (entries are reused): see QuietFor
	lazy  bool   // its stack is still to take (EnterLazy), under mu
}

// epoch is when this process began, as far as mono is concerned.
var epoch = time.Now()

// mono is the time since epoch, by the monotonic clock: one clock read,
// where time.Now makes two (the wall clock too), for each call's start
// and end.
func mono() time.Duration { return time.Since(epoch) }

var (
	mu       sync.Mutex
	calls    = map[*entry]struct{}{}
	progress atomic.Uint64
	pool     = sync.Pool{New: func() any { return new(entry) }}
	gens     atomic.Uint64
)

// Entry is a call entered in the registry; Exit removes it.
type Entry struct{ e *entry }

// Enter records that the calling goroutine is blocked in c from now on,
// with its stack, from which Snapshot takes the call site.
func Enter(c Call) Entry {
	e := pool.Get().(*entry)
	e.c, e.since, e.gen = c, mono(), gens.Add(1)
	e.npc = stack(&e.pcs, 3)
	mu.Lock()
	calls[e] = struct{}{}
	mu.Unlock()
	return Entry{e}
}

// EnterLazy is Enter for a call that may well not block at all (a
// collective, entered as it begins): it takes no stack, which costs more
// than such a call on shared memory (runtime.Callers was a third of a
// 2-rank Barrier's time), and reads no clock. Parking takes both, for the
// call whose quiet context (QuietFor) it is given, as the call's goroutine
// is about to block: the call is blocked from then on (its time before,
// a spin of at most a few hundred microseconds, is not counted).
func EnterLazy(c Call) Entry {
	e := pool.Get().(*entry)
	e.c, e.since, e.gen, e.lazy = c, 0, gens.Add(1), true
	mu.Lock()
	calls[e] = struct{}{}
	mu.Unlock()
	return Entry{e}
}

// stack takes the calling goroutine's stack into pcs, skipping skip
// frames (runtime.Callers's count), and returns how many it took. The
// caller's site is a few frames up from any of gorun's calls: walking the
// rest of a deep stack cost a collective on shared memory a tenth of its
// time. Only when those frames are all gorun's own is the whole stack
// taken.
func stack(pcs *[24]uintptr, skip int) int {
	n := runtime.Callers(skip, pcs[:shallow])
	if n == shallow && !reachesCaller(pcs[:shallow]) {
		n = runtime.Callers(skip, pcs[:])
	}
	return n
}

// Parking takes the stack of the call that ctx is the quiet context of
// (QuietFor), if it was entered lazily and has none yet: the calling
// goroutine, the call's, is about to block. It does nothing for any
// other ctx.
func Parking(ctx context.Context) {
	v, ok := ctx.Value(quietKey{}).(*quietCall)
	if !ok || v.e == nil {
		return
	}
	mu.Lock()
	lazy := v.e.gen == v.gen && v.e.lazy
	mu.Unlock()
	if !lazy {
		return
	}
	var pcs [24]uintptr
	n := stack(&pcs, 3)
	now := mono()
	mu.Lock()
	if v.e.gen == v.gen && v.e.lazy {
		v.e.pcs, v.e.npc, v.e.lazy, v.e.since = pcs, n, false, now
	}
	mu.Unlock()
}

// Exit ends the entry, counting it as progress and its time as blocked
// in its operation.
func (t Entry) Exit() {
	if t.e == nil {
		return
	}
	mu.Lock()
	delete(calls, t.e)
	op, since := t.e.c.Op, t.e.since
	// Under mu: Parking may look at it still. Its gen 0 matches no call;
	// pcs hold no pointers and are written before they are read.
	t.e.c, t.e.npc, t.e.gen, t.e.lazy = Call{}, 0, 0, false
	mu.Unlock()
	if since != 0 {
		counter(op).blocked.Add(int64(mono() - since))
	}
	progress.Add(1)
	pool.Put(t.e)
}

// opCounter counts one operation's calls and the time they were blocked.
type opCounter struct{ calls, blocked atomic.Int64 }

// ops is every operation's counter, by name: a map that is replaced,
// never written, so that Exit finds a counter with no lock and no
// interface hashing (sync.Map's cost a tenth of a 2-rank Barrier on
// shared memory); opsMu orders the replacements.
var (
	ops   atomic.Pointer[map[string]*opCounter]
	opsMu sync.Mutex
)

func counter(op string) *opCounter {
	if m := ops.Load(); m != nil {
		if c, ok := (*m)[op]; ok {
			return c
		}
	}
	opsMu.Lock()
	defer opsMu.Unlock()
	old := ops.Load()
	if old != nil {
		if c, ok := (*old)[op]; ok {
			return c
		}
	}
	m := make(map[string]*opCounter, 1+len(ptrMap(old)))
	for k, c := range ptrMap(old) {
		m[k] = c
	}
	c := new(opCounter)
	m[op] = c
	ops.Store(&m)
	return c
}

// ptrMap is *m, or nil.
func ptrMap(m *map[string]*opCounter) map[string]*opCounter {
	if m == nil {
		return nil
	}
	return *m
}

// Op is one operation's call counter, made once (NewOp) so that counting
// a call is one atomic add.
type Op struct{ c *opCounter }

// NewOp returns the counter of the operation named op.
func NewOp(op string) Op { return Op{counter(op)} }

// Count counts a call that the program made (not one made under Quiet,
// inside a collective), for the statistics.
func (o Op) Count(ctx context.Context) {
	if !IsQuiet(ctx) {
		o.c.calls.Add(1)
	}
}

// OpStat is one operation's share of the statistics.
type OpStat struct {
	Op      string        `json:"op"`
	Calls   int64         `json:"calls"`
	Blocked time.Duration `json:"blocked"` // in calls that had to wait
}

// Stats is what a rank did, as gorun --stats prints it. Messages count
// every message of the rank, the collectives' own included; a SendAll
// counts one message per receiver.
type Stats struct {
	SentMsgs  int64    `json:"sent_msgs"`
	SentBytes int64    `json:"sent_bytes"`
	RecvMsgs  int64    `json:"recv_msgs"`
	RecvBytes int64    `json:"recv_bytes"`
	Largest   int64    `json:"largest"` // the largest message sent or received, in bytes
	Ops       []OpStat `json:"ops"`     // by name

	// What left this rank by each path, protocol frames included: frames
	// and bytes (header and payload) through the bus and through the
	// host's shared-memory rings, and bytes this rank copied straight out
	// of another rank's memory (single copies of large messages).
	BusFrames  int64 `json:"bus_frames"`
	BusBytes   int64 `json:"bus_bytes"`
	RingFrames int64 `json:"ring_frames"`
	RingBytes  int64 `json:"ring_bytes"`
	CopyBytes  int64 `json:"copy_bytes"`
}

// Ops returns every operation's calls and blocked time so far, by name.
func Ops() []OpStat {
	var out []OpStat
	for op, c := range ptrMap(ops.Load()) {
		if n := c.calls.Load(); n > 0 {
			out = append(out, OpStat{Op: op, Calls: n, Blocked: time.Duration(c.blocked.Load())})
		}
	}
	slices.SortFunc(out, func(a, b OpStat) int { return strings.Compare(a.Op, b.Op) })
	return out
}

// Tick counts progress that ends no call: a frame handled.
func Tick() { progress.Add(1) }

// Snapshot returns the calls in progress, the longest blocked first, at
// most MaxCalls of them, and how many more there are.
func Snapshot() ([]Call, int) {
	now := mono()
	mu.Lock()
	out := make([]Call, 0, len(calls))
	stacks := make([][]uintptr, 0, len(calls))
	for e := range calls {
		c := e.c
		if e.since != 0 {
			c.For = now - e.since
		}
		out = append(out, c)
		stacks = append(stacks, append([]uintptr(nil), e.pcs[:e.npc]...))
	}
	mu.Unlock()
	for i := range out {
		out[i].Site = site(stacks[i])
	}
	slices.SortStableFunc(out, func(a, b Call) int { return cmp.Compare(b.For, a.For) })
	more := 0
	if len(out) > MaxCalls {
		more = len(out) - MaxCalls
		out = out[:MaxCalls]
	}
	return out, more
}

// Now is this process's State, with inited and closed as given.
func Now(inited, closed bool) State {
	cs, more := Snapshot()
	return State{Inited: inited, Closed: closed, Calls: cs, More: more, Progress: progress.Load(), CPU: cpuTime()}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ownPackages are the packages whose frames a call site skips: gorun's
// own (the mpitest harness is the caller's), and the runtime's.
var ownPackages = map[string]bool{
	"github.com/gorun-hpc/gorun/mpi":               true,
	"github.com/gorun-hpc/gorun/collectives":       true,
	"github.com/gorun-hpc/gorun/pool":              true,
	"github.com/gorun-hpc/gorun/internal/blocked":  true,
	"github.com/gorun-hpc/gorun/internal/shm":      true, // a wait on the flags: Parking
	"github.com/gorun-hpc/gorun/internal/hostsync": true,
	"runtime": true,
	"context": true,
}

// shallow is how many frames Enter takes first.
const shallow = 6

// callerPCs caches, by program counter, whether the frames at it (the
// function and what was inlined into it there) include one outside
// gorun's packages: a caller's.
var callerPCs sync.Map // uintptr -> bool

// reachesCaller reports whether pcs include a caller's frame.
func reachesCaller(pcs []uintptr) bool {
	for _, pc := range pcs {
		v, ok := callerPCs.Load(pc)
		if !ok {
			v, _ = callerPCs.LoadOrStore(pc, site([]uintptr{pc}) != "")
		}
		if v.(bool) {
			return true
		}
	}
	return false
}

// site is file:line of the first frame of pcs outside gorun's packages.
func site(pcs []uintptr) string {
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if f.Function != "" && !ownPackages[packageOf(f.Function)] {
			return baseName(f.File) + ":" + strconv.Itoa(f.Line)
		}
		if !more {
			return ""
		}
	}
}

// packageOf is the package path of a function's full name
// ("example.com/a/b.(*T).M" is in "example.com/a/b").
func packageOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/') + 1
	if dot := strings.IndexByte(fn[slash:], '.'); dot >= 0 {
		return fn[:slash+dot]
	}
	return fn
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

type quietKey struct{}

// quietCall is a quiet context's value: the call it is quiet for, if any
// (and which of the entry's uses: gen).
type quietCall struct {
	e   *entry
	gen uint64
}

// Quiet returns ctx marked so that the calls made with it are not entered:
// a collective enters itself, and hides the messages it is made of.
func Quiet(ctx context.Context) context.Context {
	return context.WithValue(ctx, quietKey{}, &noCall) // a pointer: no allocation for the value
}

// noCall is the value of a context that is quiet for no call.
var noCall quietCall

// QuietFor is Quiet for the calls that make up the call t entered
// (EnterLazy): where one of them blocks, Parking takes t's stack. It costs
// one allocation; QuietIn none.
func QuietFor(ctx context.Context, t Entry) context.Context {
	return QuietIn(new(QuietCtx), ctx, t)
}

// QuietIn is QuietFor, made in q: a collective, which makes one at every
// call, keeps q in its call's own memory. q must not be used for another
// context while this one is.
func QuietIn(q *QuietCtx, ctx context.Context, t Entry) context.Context {
	if t.e == nil {
		return Quiet(ctx)
	}
	*q = QuietCtx{Context: ctx, q: quietCall{t.e, t.e.gen}}
	return q
}

// A QuietCtx is QuietFor's context: its parent, and the call's value under
// quietKey; every other key and all else are the parent's.
type QuietCtx struct {
	context.Context
	q quietCall
}

// Value is the call's value under quietKey, else the parent's.
func (c *QuietCtx) Value(key any) any {
	if key == (quietKey{}) {
		return &c.q
	}
	return c.Context.Value(key)
}

// IsQuiet reports whether ctx comes from Quiet.
func IsQuiet(ctx context.Context) bool {
	return ctx.Value(quietKey{}) != nil
}

// CommInfo, set by package mpi, gives the name of one of its
// communicators and its members' world ranks (nil for the world), for
// collectives, which cannot see them.
var CommInfo func(comm any) (name string, group []int)

// QuietComm, set by package mpi, marks one of its communicators as a
// collectives' shadow: its calls and messages are not the program's own,
// and are not traced.
var QuietComm func(comm any)

// AppendJSON appends st as encoding/json would write it (the same fields,
// names and order) to b. A rank writes its statistics once, at Close:
// encoding/json's first use in a process costs more than the rest of
// Close (it builds its reflection cache), so they are written by hand.
func (st Stats) AppendJSON(b []byte) []byte {
	b = append(b, `{"sent_msgs":`...)
	b = strconv.AppendInt(b, st.SentMsgs, 10)
	b = append(b, `,"sent_bytes":`...)
	b = strconv.AppendInt(b, st.SentBytes, 10)
	b = append(b, `,"recv_msgs":`...)
	b = strconv.AppendInt(b, st.RecvMsgs, 10)
	b = append(b, `,"recv_bytes":`...)
	b = strconv.AppendInt(b, st.RecvBytes, 10)
	b = append(b, `,"largest":`...)
	b = strconv.AppendInt(b, st.Largest, 10)
	b = append(b, `,"ops":`...)
	if st.Ops == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, o := range st.Ops {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"op":`...)
			b = appendJSONString(b, o.Op)
			b = append(b, `,"calls":`...)
			b = strconv.AppendInt(b, o.Calls, 10)
			b = append(b, `,"blocked":`...)
			b = strconv.AppendInt(b, int64(o.Blocked), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"bus_frames":`...)
	b = strconv.AppendInt(b, st.BusFrames, 10)
	b = append(b, `,"bus_bytes":`...)
	b = strconv.AppendInt(b, st.BusBytes, 10)
	b = append(b, `,"ring_frames":`...)
	b = strconv.AppendInt(b, st.RingFrames, 10)
	b = append(b, `,"ring_bytes":`...)
	b = strconv.AppendInt(b, st.RingBytes, 10)
	b = append(b, `,"copy_bytes":`...)
	b = strconv.AppendInt(b, st.CopyBytes, 10)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Operation names are Go
// identifiers; anything else is escaped (\u00XX for control bytes and the
// characters HTML would misread, as encoding/json does; invalid UTF-8 as
// \ufffd).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r == '\b':
			b = append(b, `\b`...)
		case r == '\f':
			b = append(b, `\f`...)
		case r < 0x20 || r == '<' || r == '>' || r == '&':
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
