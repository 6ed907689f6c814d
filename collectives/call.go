package collectives

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/hostsync"
	"github.com/gorun-hpc/gorun/internal/invariant"
	"github.com/gorun-hpc/gorun/internal/trace"
	"github.com/gorun-hpc/gorun/mpi"
)

// Isolation. Every collective works on a shadow of the caller's
// communicator: a Dup made on first use, so that no collective message can
// match a receive of the program's. Dup is itself collective but sends
// nothing, and every rank calls collectives on a communicator in the same
// order, so every rank makes the same shadow at the same point. Calls on one
// shadow are numbered, and a call's number is in the tag of each of its
// messages: a fast rank's next collective never matches a slow rank's
// current one.

// shadows maps a communicator (weakly, so that a communicator the program
// drops can be collected) to its shadow.
var shadows sync.Map // weak.Pointer[mpi.Comm] -> *shadow

// lastShadow is the shadow begin found last: a program that calls
// collectives on one communicator, call after call, finds it without
// weak.Make and the map, which took a tenth of a 2-rank Barrier on shared
// memory. Its key names the communicator (nil once that is collected).
var lastShadow atomic.Pointer[shadow]

type shadow struct {
	key    weak.Pointer[mpi.Comm]
	mu     sync.Mutex
	comm   *mpi.Comm // nil until made
	starts []int     // where the agreement tree's groups start (agreeGroups)
	// flags, where every rank is on one host's shared memory, are where
	// each blocking call arrives, with its number and kind: a Barrier
	// there waits on them alone (see Barrier).
	flags  hostsync.Flags
	seq    uint32 // calls so far
	active int    // calls in progress on this rank
	// nbSeq numbers the non-blocking calls, apart from the blocking ones
	// (their tags are apart too); nbq holds those started and not yet run,
	// which one goroutine at a time (while nbRunning) runs in order.
	nbSeq     uint32
	nbq       []func()
	nbRunning bool
	// poison, once set, is the ErrConcurrent error every call in progress
	// and every later call on the communicator returns. ctx is cancelled
	// with it as the cause (cancelLocked), and so is every call in calls,
	// which ends the calls blocked in mpi.
	poison error
	ctx    context.Context
	cancel context.CancelCauseFunc
	// quiet is ctx for the hang report's quiet calls: the context of
	// every call whose own context never ends (Done is nil), so that such
	// a call makes no context of its own.
	quiet context.Context
	// calls are the calls in progress with a context of their own (one
	// the caller's can end): cancelLocked ends them too.
	calls map[*call]struct{}
	// news is the receive of another rank's news that it saw two calls at
	// once (see listen).
	news *mpi.Request
	// beforeUp, set by tests only, runs in every call's first phase just
	// before this rank's status leaves it.
	beforeUp func()
	// lentHook, set by tests only, runs once a root has posted the loan
	// of its data (lent.go).
	lentHook func()
}

// tagCalls is how many calls have distinct tags before tags repeat; each
// call has tagPhases tags of its own. Blocking calls take the lower half of
// the tags, non-blocking ones (numbered apart) the upper half: the two
// kinds run at once on one communicator and never match each other's
// messages.
const (
	tagPhases = 4
	tagCalls  = (mpi.MaxTag + 1) / tagPhases / 2
)

// The phases of a call, each with a tag of its own.
const (
	phaseAgree  = iota // status exchange, with small payloads
	phaseData          // bulk data once the ranks agree
	phaseFan           // data sent with SendAll, which is not ordered with phaseData's sends
	phasePoison        // only in poisonTag
)

// poisonTag carries the news that a rank saw two collective calls at once on
// the communicator: the tag of phasePoison of call number 0, which no call
// has (calls are numbered from 1, and tags repeat only after tagCalls).
const poisonTag = phasePoison

// call is one collective call in progress on one rank.
type call struct {
	ctx        context.Context
	k          kind
	c          *mpi.Comm // the shadow
	rank, size int
	seq        uint32
	elem       *elemInfo
	st         *status   // merged status so far
	own        status    // this rank's, where st starts (one allocation less a call)
	local      *argError // this rank's own argument error
	sh         *shadow
	user       *mpi.Comm               // the caller's, kept alive until end: its cleanup ends the shadow
	cancel     context.CancelCauseFunc // ends ctx, where the call has one of its own; else nil
	entry      blocked.Entry           // the call in the hang report
	quiet      blocked.QuietCtx        // ctx, quiet for the entry (blocked.QuietIn)
	traced     *blocked.Call           // the call as traced, when tracing is on (nil: off; apart, for a smaller call)
	start      int64                   // when it began, when tracing is on
	// opPanic holds what this rank's Op panicked with (recovered by
	// apply), to panic with again once the call is over here. failed is
	// set once the call failed so: an Op panicked here, or a rank sent the
	// failure marker in the data phase (see outgoing). A failed call goes
	// on without calling the Op again, so that no rank waits for this one.
	opPanic *any
	failed  bool
	markers bool // the data phase may carry the failure marker
	nb      bool // a non-blocking call (nonblocking.go)
	// posts: the call arrives on the flags as it posts its data there
	// (postsData); posted once it has, or has arrived without (end).
	posts, posted bool
	// rel is the last of the numbers after seq that the call reserved
	// (lent.go: a Bcast whose root lent its data, an Allreduce of lent
	// data), 0 where none; at the last of them this rank has arrived at
	// (end arrives at the others).
	rel, at uint32
}

// begin starts a call of collective k on c: it finds or makes c's shadow and
// numbers the call. root and length are the arguments every rank must agree
// on (0 where there is none).
func begin(ctx context.Context, c *mpi.Comm, k kind, elem *elemInfo, root, length int) (*call, error) {
	return beginCall(ctx, c, k, elem, root, length, false)
}

// beginCall is begin, for a non-blocking call when nb is set: numbered
// apart, and not counted among the calls in progress (several may run
// beside a blocking one).
func beginCall(ctx context.Context, c *mpi.Comm, k kind, elem *elemInfo, root, length int, nb bool) (*call, error) {
	if ctx == nil {
		return nil, opError(k, mpi.ErrNilContext)
	}
	if c == nil {
		return nil, fmt.Errorf("collectives: %s: nil communicator", k)
	}
	sh := lastShadow.Load()
	if sh == nil || sh.key.Value() != c {
		key := weak.Make(c)
		v, ok := shadows.Load(key)
		if !ok {
			var loaded bool
			v, loaded = shadows.LoadOrStore(key, &shadow{key: key})
			if !loaded {
				runtime.AddCleanup(c, (*shadow).drop, v.(*shadow))
			}
		}
		sh = v.(*shadow)
		lastShadow.Store(sh)
	}
	x, poison, err := sh.enter(ctx, c, k, elem, length, nb)
	if err != nil {
		return nil, err
	}
	// x.ctx ends with ctx or the poison; the hang report shows the call
	// as itself, not its messages.
	name, group := blocked.CommInfo(c)
	op := k.String()
	if nb {
		op = "I" + strings.ToLower(op[:1]) + op[1:]
	}
	bc := blocked.Call{Op: op, Coll: true, Comm: name, Group: group, Peer: blocked.None, PeerWorld: blocked.None, Tag: blocked.None, Root: blocked.None, Bytes: -1, Seq: x.seq}
	if k.hasRoot() {
		bc.Root = root
	}
	if nb {
		x.entry = blocked.Enter(bc) // its work runs in another goroutine, without the caller's frames
	} else {
		// The stack is taken only if the call blocks (Parking, where
		// its messages or flags wait): most calls on shared memory end
		// first.
		x.entry = blocked.EnterLazy(bc)
		x.ctx = blocked.QuietIn(&x.quiet, x.ctx, x.entry)
	}
	kindOps[k].Count(ctx)
	if !blocked.IsQuiet(ctx) && trace.On() != nil {
		traced := bc
		x.traced, x.start = &traced, trace.Now()
	}
	if poison != nil {
		x.end()
		return nil, poison
	}
	if err := closedErr(c); err != nil {
		x.end()
		return nil, opError(k, err)
	}
	if err := ctx.Err(); err != nil {
		x.end()
		return nil, opError(k, err)
	}
	x.own.init(x.rank, k, elem.id, root, length)
	x.st = &x.own
	return x, nil
}

// enter makes sh's shadow on first use and numbers a call of k on c.
// It returns the call, and the poison it must fail with if the
// communicator is poisoned. sh.mu is released however enter ends, a panic
// included: a lock held past a panic would block every later call.
func (sh *shadow) enter(ctx context.Context, c *mpi.Comm, k kind, elem *elemInfo, length int, nb bool) (*call, error, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.comm == nil {
		d, err := c.Dup(blocked.Quiet(ctx)) // the shadow is not the program's Dup
		if err != nil {
			return nil, nil, opError(k, err)
		}
		blocked.QuietComm(d)
		sh.comm = d
		sh.starts = agreeGroups(d.Size(), d.Hosts())
		sh.flags = hostsync.Open(d)
		sh.ctx, sh.cancel = context.WithCancelCause(context.Background())
		sh.quiet = blocked.Quiet(sh.ctx)
		sh.calls = make(map[*call]struct{})
		sh.news = d.Irecv(mpi.AnySource, poisonTag)
		invariant.Standing(sh.news)
		go sh.listen()
	}
	x := &call{k: k, c: sh.comm, rank: c.Rank(), size: c.Size(), elem: elem, sh: sh, user: c, nb: nb}
	if ctx.Done() == nil {
		x.ctx = sh.quiet // ends with the poison alone, and costs nothing
	} else {
		cctx, cancel := context.WithCancelCause(ctx)
		x.ctx, x.cancel = cctx, cancel
		if nb {
			x.ctx = blocked.Quiet(cctx) // a blocking call's is made quiet for it (beginCall)
		}
		if sh.poison != nil || sh.ctx.Err() != nil {
			cancel(context.Cause(sh.ctx))
		} else {
			sh.calls[x] = struct{}{}
		}
	}
	if nb {
		sh.nbSeq++
		x.seq = sh.nbSeq
		return x, sh.poison, nil
	}
	sh.seq++
	x.seq = sh.seq
	if sh.flags != nil {
		// A call that posts its data arrives as it does (postsData);
		// every other arrives now.
		if x.posts = postsData(k, elem, length, sh.flags); !x.posts {
			sh.flags.Arrive(x.seq, byte(k))
		}
	}
	sh.active++
	if sh.active > 1 {
		sh.poisonLocked(fmt.Errorf("collectives: %s: %w on rank %d", k, ErrConcurrent, c.Rank()), true, nil)
	}
	return x, sh.poison, nil
}

// end closes call x on this rank: every call that begin returned ends so.
func (x *call) end() {
	x.entry.Exit()
	if t := trace.On(); t != nil && x.traced != nil {
		e := trace.Event{Op: x.traced.Op, Start: x.start, Dur: trace.Now() - x.start, Comm: x.traced.Comm}
		if x.traced.Root != blocked.None {
			e.Root, e.Flags = x.traced.Root, trace.HasRoot
		}
		t.Record(e)
	}
	if x.posts && !x.posted {
		// Every call arrives, or the other ranks would wait for this one
		// at every later call: without data, which makes theirs take
		// the agreement.
		x.posted = true
		x.sh.flags.Arrive(x.seq, byte(x.k))
	}
	for s := max(x.at, x.seq) + 1; x.rel != 0 && s <= x.rel; s++ {
		x.sh.flags.Arrive(s, byte(x.k))
		x.at = s
	}
	if x.cancel != nil || !x.nb {
		x.sh.mu.Lock()
		if x.cancel != nil { // only such a call is in calls (enter)
			delete(x.sh.calls, x)
		}
		if !x.nb {
			x.sh.active--
		}
		x.sh.mu.Unlock()
	}
	if x.cancel != nil {
		x.cancel(nil)
	}
	runtime.KeepAlive(x.user)
}

// done ends call x and returns what the collective returns: out and err,
// unless the communicator was poisoned meanwhile (another call entered it
// on some rank while x ran), when x fails with the poison, whatever it
// computed: a result that might mix two calls' data is never returned.
func done[T any](x *call, out []T, err error) ([]T, error) {
	x.end()
	if x.opPanic != nil {
		panic(*x.opPanic) // the Op's own panic, now that the call is over
	}
	if x.failed && err == nil {
		out, err = nil, fmt.Errorf("collectives: %s: an Op panicked on another rank: %w", x.k, ErrOpPanicked)
	}
	x.sh.mu.Lock()
	x.sh.heardLocked()
	if err != nil {
		x.sh.poisonLost(err)
	}
	poison := x.sh.poison
	x.sh.mu.Unlock()
	if poison != nil {
		return nil, poison
	}
	return out, err
}

// apply runs op(acc, in) for call x, unless the call failed already. A
// panic of op is recovered and recorded (the call fails, on every rank,
// and done panics with it again on this one): a user's Op that panics must
// leave neither this rank nor the others inside the call. It reports
// whether op ran to its end.
func apply[T mpi.Number](x *call, op Op[T], acc, in []T) (ok bool) {
	if x.failed {
		return false
	}
	defer func() {
		if !ok {
			x.panicked(recover())
		}
	}()
	op(acc, in)
	return true
}

// panicked records that this rank's Op panicked with v: the call fails,
// and so, through the status or the data phase's marker, on the others.
func (x *call) panicked(v any) {
	if v == nil {
		return // runtime.Goexit: not a panic, and not ours to stop
	}
	x.opPanic, x.failed = &v, true
	x.fail(codePanic, "the Op panicked on rank %d: %v", x.rank, v)
}

// outgoing is what this rank sends for b in the data phase of a
// reduction: b, or once the call has failed the failure marker, an empty
// message, which no step of a data phase sends otherwise (its blocks are
// never empty below thousands of ranks).
func (x *call) outgoing(b []byte) []byte {
	if x.failed {
		return nil
	}
	return b
}

// marker reports whether a data-phase message of n bytes, where want were
// due, is the failure marker, and then fails the call.
func (x *call) marker(n, want int) bool {
	if x.markers && n == 0 && want > 0 {
		x.failed = true
		return true
	}
	return false
}

// checkConcurrent records, in this rank's status, that the communicator
// is poisoned: called before a rank passes its status on, and by the leader
// before the verdict, so that every rank's verdict fails for a call during
// which some rank saw another call.
func (x *call) checkConcurrent() {
	x.sh.mu.Lock()
	x.sh.heardLocked()
	poison := x.sh.poison
	x.sh.mu.Unlock()
	if errors.Is(poison, ErrConcurrent) {
		x.fail(codeConcurrent, "another collective call ran at the same time")
	}
}

// poisonLocked marks the communicator as used by two calls at once: every
// call in progress on this rank fails with err, and so does every later
// one. With tell, the other ranks are told, so that theirs fail too.
// Called with sh.mu held.
func (sh *shadow) poisonLocked(err error, tell bool, news []byte) {
	if sh.poison != nil {
		return
	}
	sh.poison = err
	sh.cancelLocked(err)
	if !tell {
		return
	}
	for r := range sh.comm.Size() {
		if r != sh.comm.Rank() {
			sh.comm.Isend(r, poisonTag, news) // completes by itself: eager, or fails with the comm
		}
	}
}

// lostNews is the news that rank lost of the communicator is gone
// (mpi.ErrPeerLost; died: mpi.ErrPeerDied): its rank, 4 bytes, and 1 if it
// died. Empty news is ErrConcurrent's.
func lostNews(lost int, died bool) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(lost))
	if died {
		return append(b, 1)
	}
	return append(b, 0)
}

// lostError is the error of every collective on a communicator one of
// whose ranks is lost: none can complete.
func lostError(lost int, died bool) error {
	why := mpi.ErrPeerLost
	if died {
		why = mpi.ErrPeerDied
	}
	return &mpi.RankError{Rank: lost, Op: "collective", Err: why}
}

// poisonLost poisons the communicator, and tells the others, when err says
// that one of its ranks is lost: every rank's calls in progress and to
// come on it fail naming that rank, where some would wait forever for a
// peer that failed because of it. Called with sh.mu held.
func (sh *shadow) poisonLost(err error) {
	var re *mpi.RankError
	if !errors.Is(err, mpi.ErrPeerLost) || !errors.As(err, &re) || sh.comm == nil {
		return
	}
	died := errors.Is(err, mpi.ErrPeerDied)
	sh.poisonLocked(lostError(re.Rank, died), true, lostNews(re.Rank, died))
}

// drop forgets the shadow of a communicator the program dropped, and ends
// its listen.
func (sh *shadow) drop() {
	shadows.Delete(sh.key)
	lastShadow.CompareAndSwap(sh, nil)
	sh.mu.Lock()
	if sh.cancel != nil {
		sh.cancelLocked(mpi.ErrClosed)
	}
	sh.mu.Unlock()
}

// cancelLocked cancels sh.ctx with err, and every call in progress with a
// context of its own. Called with sh.mu held.
func (sh *shadow) cancelLocked(err error) {
	sh.cancel(err)
	cause := context.Cause(sh.ctx) // err, unless an earlier cancel's
	for x := range sh.calls {
		x.cancel(cause)
	}
}

// listen waits for another rank's news, for as long as the communicator
// lives: that it saw two calls at once, or that a rank is lost.
func (sh *shadow) listen() {
	select {
	case <-sh.news.Done():
		if lost, died, ok := sh.lostNews(); ok {
			sh.confirmLost(lost)
			sh.mu.Lock()
			sh.poisonLocked(lostError(lost, died), false, nil)
			sh.mu.Unlock()
			return
		}
		sh.mu.Lock()
		sh.heardLocked()
		sh.mu.Unlock()
	case <-sh.ctx.Done():
		sh.news.Cancel()
	}
}

// lostNews reads the news, once come, that a rank of the communicator is
// lost (see lostNews, the function).
func (sh *shadow) lostNews() (lost int, died, ok bool) {
	if _, err := sh.news.Wait(quiet); err != nil {
		return 0, false, false
	}
	news := sh.news.Data()
	if len(news) != 5 || int(binary.LittleEndian.Uint32(news)) >= sh.comm.Size() {
		return 0, false, false
	}
	return int(binary.LittleEndian.Uint32(news)), news[4] == 1, true
}

// lostConfirm bounds how long a rank told that another is lost waits to
// see it lost itself.
const lostConfirm = 2 * time.Second

// confirmLost waits, at most lostConfirm, until this rank's own engine
// holds rank lost of the communicator lost (its bye, or gorun's word that
// it died, reaches every rank): gorun then hears from this rank that it
// lost that peer before the collective fails here, and names the lost
// rank, not this one, as the job's failure.
func (sh *shadow) confirmLost(lost int) {
	r := sh.comm.Irecv(lost, poisonTag) // fails once lost is gone
	ctx, cancel := context.WithTimeout(quiet, lostConfirm)
	defer cancel()
	r.Wait(ctx)
	r.Cancel()
}

// quiet is a context for waits that are the collectives' own business.
var quiet = blocked.Quiet(context.Background())

// heardLocked poisons the communicator if another rank's news has come.
// Calls check it too before they end, so that a call that failed because
// the rank that sent the news has since left (mpi.ErrPeerLost) fails with
// the news, whether or not listen has run yet: the news came first. Called
// with sh.mu held.
func (sh *shadow) heardLocked() {
	select {
	case <-sh.news.Done():
	default:
		return
	}
	st, err := sh.news.Wait(quiet)
	if _, _, lost := sh.lostNews(); err == nil && !lost { // a lost rank's news is listen's
		sh.poisonLocked(fmt.Errorf("collectives: %w on rank %d", ErrConcurrent, st.Source), false, nil)
	}
}

// closedErr returns mpi.ErrClosed if c was closed. The shadow is a
// communicator of its own, which Close on c (other than the world) leaves
// open.
func closedErr(c *mpi.Comm) error {
	if errors.Is(c.Err(), mpi.ErrClosed) {
		return mpi.ErrClosed
	}
	return nil
}

func (x *call) tag(phase int) int {
	n := int(x.seq % tagCalls)
	if x.nb {
		n += tagCalls
	}
	return n*tagPhases + phase
}

// fail records a local argument error: this rank goes on with the exchange
// so that every rank learns of it, then returns it.
func (x *call) fail(code uint8, format string, args ...any) {
	if x.local != nil {
		return
	}
	x.local = newArgError(x.k, code, fmt.Sprintf(format, args...))
	x.st.fail(x.rank, x.local)
}

// checkRoot records a root out of range. It reports whether root is valid.
func (x *call) checkRoot(root int) bool {
	if root < 0 || root >= x.size {
		x.fail(codeRank, "root %d not in [0, %d)", root, x.size)
		return false
	}
	return true
}

// verdict returns the error every rank returns for the merged status, or
// nil when the calls agree.
func (x *call) verdict() error {
	return x.st.err(x.rank, x.k, "[]"+x.elem.name, x.local)
}

// message returns a first-phase message: the header with the merged status,
// and the payload if there is one.
func (x *call) message(payload []byte, hasData bool) []byte {
	var flags uint8
	if hasData {
		flags = flagData
	}
	b := make([]byte, 0, hdrFixed+statusSize+len(x.st.errText)+hdrAlign+len(payload))
	b = appendHeader(b, x.k, flags, x.seq, x.st)
	return append(b, payload...)
}

// absorb parses a first-phase message from src and merges its status into
// this rank's (merge), or adopts it (the leader's final status, on the way
// down). It returns the payload, or nil when the message has none.
func (x *call) absorb(src int, b []byte, merge bool) ([]byte, error) {
	_, flags, seq, s, payload, err := parseHeader(b)
	if err != nil {
		return nil, fmt.Errorf("collectives: %s: from rank %d: %w", x.k, src, err)
	}
	if seq != x.seq {
		return nil, fmt.Errorf("collectives: %s: rank %d sent a message of collective call #%d during call #%d: %w", x.k, src, seq, x.seq, ErrMismatch)
	}
	if merge {
		x.st.merge(s)
	} else {
		x.st = s
	}
	if flags&flagData == 0 {
		return nil, nil
	}
	if payload == nil {
		payload = []byte{}
	}
	return payload, nil
}

// exchange sends msg to dst and receives a message from src, at the same
// time, on the tag of phase.
func (x *call) exchange(phase, dst int, msg []byte, src int) ([]byte, error) {
	req := x.c.Isend(dst, x.tag(phase), msg)
	b, _, err := x.c.Recv(x.ctx, src, x.tag(phase))
	if err != nil {
		req.Cancel()
		return nil, opError(x.k, err)
	}
	if _, err := req.Wait(x.ctx); err != nil {
		req.Cancel()
		return nil, opError(x.k, err)
	}
	return b, nil
}

// send and recv move bulk data once the ranks agree.
func (x *call) send(dst int, data []byte) *mpi.Request {
	return x.c.Isend(dst, x.tag(phaseData), data)
}

func (x *call) recv(src int) ([]byte, error) {
	b, _, err := x.c.Recv(x.ctx, src, x.tag(phaseData))
	if err != nil {
		return nil, opError(x.k, err)
	}
	return b, nil
}

func (x *call) waitAll(reqs []*mpi.Request) error {
	if err := mpi.WaitAll(x.ctx, reqs...); err != nil {
		for _, r := range reqs {
			r.Cancel()
		}
		return opError(x.k, err)
	}
	return nil
}

// Block lists: several ranks' data in one message, as a count, the length
// of each block, then the blocks one after the other. A nil block (as
// opposed to an empty one) stands for data that travels by another way.

const nilBlock = ^uint64(0)

func appendBlocks(b []byte, blocks [][]byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(blocks)))
	for _, blk := range blocks {
		l := uint64(len(blk))
		if blk == nil {
			l = nilBlock
		}
		b = binary.LittleEndian.AppendUint64(b, l)
	}
	for _, blk := range blocks {
		b = append(b, blk...)
	}
	return b
}

func blocksSize(blocks [][]byte) int {
	n := 4 + 8*len(blocks)
	for _, blk := range blocks {
		n += len(blk)
	}
	return n
}

// parseBlocks returns the blocks of p, as sub-slices of p.
func parseBlocks(p []byte) ([][]byte, error) {
	if len(p) < 4 {
		return nil, errors.New("malformed block list")
	}
	n := int(binary.LittleEndian.Uint32(p))
	if len(p) < 4+8*n {
		return nil, errors.New("malformed block list")
	}
	blocks := make([][]byte, n)
	off := 4 + 8*n
	for i := range blocks {
		l := binary.LittleEndian.Uint64(p[4+8*i:])
		if l == nilBlock {
			continue
		}
		if l > uint64(len(p)-off) {
			return nil, errors.New("malformed block list")
		}
		blocks[i] = p[off : off+int(l)]
		off += int(l)
	}
	return blocks, nil
}
