package pool

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/trace"
	"github.com/gorun-hpc/gorun/mpi"
)

// A call of Map, MapUnordered or Run is, for gorun --stats, --trace and the
// hang report, one call of its own, as a collective is: entered in the
// blocked-call registry for its whole length (its blocked time is the
// time the calling goroutine waited for tasks and results), one slice in
// the trace with the tasks this rank ran, and the messages it is made of
// hidden (its shadow communicator is quiet, and its calls are made with a
// quiet context).

var (
	opMap          = blocked.NewOp("Map")
	opMapUnordered = blocked.NewOp("MapUnordered")
	opRun          = blocked.NewOp("Run")
)

// poolCall is one call of Map, MapUnordered or Run on this rank.
type poolCall struct {
	op    string
	entry blocked.Entry
	ev    trace.Event
	t     *trace.Tracer
	ran   atomic.Int64 // tasks this rank ran (fn calls that returned)
}

// enter starts call op on c; seq is its number on c's shadow (0 on a world
// of one).
func enter(ctx context.Context, c *mpi.Comm, op string, seq int) *poolCall {
	x := &poolCall{op: op}
	if blocked.IsQuiet(ctx) {
		return x // inside a call of gorun's own: that call is the one shown
	}
	switch op {
	case "MapUnordered":
		opMapUnordered.Count(ctx)
	case "Run":
		opRun.Count(ctx)
	default:
		opMap.Count(ctx)
	}
	name, group := blocked.CommInfo(c)
	x.entry = blocked.Enter(blocked.Call{Op: op, Coll: true, Comm: name, Group: group, Peer: blocked.None,
		PeerWorld: blocked.None, Tag: blocked.None, Root: blocked.None, Bytes: -1, Seq: uint32(seq)})
	if x.t = trace.On(); x.t != nil {
		x.ev = trace.Event{Op: op, Start: trace.Now(), Comm: name}
	}
	return x
}

// exit ends the call.
func (x *poolCall) exit() {
	x.entry.Exit()
	if x.t != nil {
		x.ev.Dur = trace.Now() - x.ev.Start
		x.ev.Tasks = int(x.ran.Load())
		x.t.Record(x.ev)
	}
}

// quiet is ctx for the calls a pool call makes on its shadow: they are
// the pool call's, not the program's.
func quiet(ctx context.Context) context.Context { return blocked.Quiet(ctx) }

// panicError is the error of a task whose fn panicked: the panic's value
// and the line of fn (or of what it called) that panicked.
type panicError struct {
	value any
	at    string
}

func (p *panicError) Error() string {
	if p.at == "" {
		return fmt.Sprintf("panic: %v", p.value)
	}
	return fmt.Sprintf("panic: %v (at %s)", p.value, p.at)
}

// Unwrap returns the panic's value when it is an error.
func (p *panicError) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

// call runs fn on in, turning a panic into a *panicError, so that the task
// fails as a returned error would, on every rank, instead of ending this
// rank's process.
func call[In, Out any](ctx context.Context, fn func(ctx context.Context, in In) (Out, error), in In) (out Out, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, at: panicSite(debug.Stack())}
		}
	}()
	return fn(ctx, in)
}

// panicSite is file:line of the frame that panicked, from a stack taken in
// the deferred recover: the first frame after the runtime's panic outside
// the runtime (a nil dereference goes through runtime.sigpanic).
func panicSite(stack []byte) string {
	lines := strings.Split(string(stack), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "panic(") {
			continue
		}
		for j := i + 2; j+1 < len(lines); j += 2 {
			if !strings.HasPrefix(lines[j], "runtime.") {
				return siteOf(lines[j+1])
			}
		}
	}
	return ""
}

// siteOf turns a stack line "\t/path/file.go:12 +0x1d" into "file.go:12".
func siteOf(l string) string {
	l = strings.TrimSpace(l)
	if i := strings.LastIndexByte(l, ' '); i > 0 {
		l = l[:i]
	}
	if i := strings.LastIndexByte(l, '/'); i >= 0 {
		l = l[i+1:]
	}
	return l
}
