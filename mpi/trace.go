package mpi

import (
	"context"
	"encoding/json"
	"os"
	"strconv"

	"github.com/gorun-hpc/gorun/internal/blocked"
	"github.com/gorun-hpc/gorun/internal/contract"
	"github.com/gorun-hpc/gorun/internal/trace"
)

// Statistics (gorun --stats) and tracing (gorun --trace): every call the program makes is an event, and
// every message a flow from its send to the receive that matched it (see
// internal/trace). The calls and messages of collectives' shadows (quiet
// communicators) are the collectives' business: a collective is one event.

// The counters of the calls the program makes, for gorun --stats.
var (
	opSend, opRecv, opSendAll       = blocked.NewOp("Send"), blocked.NewOp("Recv"), blocked.NewOp("SendAll")
	opRecvInto, opSendrecv, opProbe = blocked.NewOp("RecvInto"), blocked.NewOp("Sendrecv"), blocked.NewOp("Probe")
	opSplit, opWait                 = blocked.NewOp("Split"), blocked.NewOp("Wait")
	opWaitAll, opWaitAny            = blocked.NewOp("WaitAll"), blocked.NewOp("WaitAny")
)

// span is a call being traced; the zero span traces nothing.
type span struct {
	t     *trace.Tracer
	start int64
}

// span starts tracing a call on c, if tracing is on and the call is the
// program's.
func (c *Comm) span(ctx context.Context) span {
	t := trace.On()
	if t == nil || c.quiet || (ctx != nil && blocked.IsQuiet(ctx)) {
		return span{}
	}
	return span{t, trace.Now()}
}

// end records the call op of the span; peer is blocked.None for a call
// without one.
func (s span) end(c *Comm, op string, peer, tag, bytes int) {
	if s.t == nil {
		return
	}
	e := trace.Event{Op: op, Start: s.start, Dur: trace.Now() - s.start, Comm: c.label(), Bytes: bytes}
	if peer != blocked.None {
		e.Peer, e.Tag, e.Flags = peer, tag, trace.HasPeer
	}
	s.t.Record(e)
}

// traceSent records the message of send r to world rank dst.
func traceSent(c *Comm, dst int, comm uint64, tag int) {
	if t := trace.On(); t != nil && !c.quiet {
		t.Record(trace.Event{Start: trace.Now(), Flags: trace.FlowOut, Flow: t.Sent(dst, comm, tag)})
	}
}

// traceArrived records the message from world rank src that a receive on
// c matched.
func traceArrived(c *Comm, src int, comm uint64, tag int) {
	if t := trace.On(); t != nil && !c.quiet {
		t.Record(trace.Event{Start: trace.Now(), Flags: trace.FlowIn, Flow: t.Arrived(src, comm, tag)})
	}
}

// startTrace turns tracing on at Init, when gorun asks for it
// (contract.Trace: the events each rank keeps).
func startTrace(rank int) {
	n, err := strconv.Atoi(os.Getenv(contract.Trace))
	if err == nil && n > 0 {
		trace.Start(rank, n)
	}
}

// reportTrace gives gorun the rank's trace, in lines "trace JSON"
// (trace.Chunk) that fit the control socket: when it closes its world,
// and when gorun asks as it stops the job (with unfinished, and then the
// calls still blocked are events too, lasting until now).
func reportTrace(unfinished bool) {
	t := trace.On()
	if t == nil || !control.sock {
		return
	}
	events, dropped := t.Drain()
	if unfinished {
		now := trace.Now()
		calls, _ := blocked.Snapshot()
		for _, c := range calls {
			e := trace.Event{Op: c.Op, Start: now - int64(c.For), Dur: int64(c.For), Comm: c.Comm, Flags: trace.Unfinished}
			if c.Peer != blocked.None {
				e.Peer, e.Tag, e.Flags = c.Peer, c.Tag, e.Flags|trace.HasPeer
			}
			if c.Root != blocked.None {
				e.Root, e.Flags = c.Root, e.Flags|trace.HasRoot
			}
			events = append(events, e)
		}
	}
	const per = 128 // events a line: well under contract.MaxStateLine
	for i := 0; i == 0 || i < len(events); i += per {
		ch := trace.Chunk{Dropped: dropped, Events: events[i:min(i+per, len(events))]}
		b, err := json.Marshal(ch)
		if err != nil || len(b) > contract.MaxStateLine-len(contract.TraceLine)-2 {
			continue
		}
		control.mu.Lock()
		control.f.Write(append(append([]byte(contract.TraceLine+" "), b...), '\n'))
		control.mu.Unlock()
	}
}
