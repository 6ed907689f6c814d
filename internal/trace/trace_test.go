package trace_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/trace"
	"github.com/gorun-hpc/gorun/internal/trace/tracecheck"
)

// TestRing: a tracer keeps its last events, oldest first, and counts the
// ones it dropped.
func TestRing(t *testing.T) {
	trace.Start(3, 4)
	defer trace.Start(0, 0)
	tr := trace.On()
	for i := range 10 {
		tr.Record(trace.Event{Op: "Send", Start: int64(i)})
	}
	evs, dropped := tr.Events()
	if dropped != 6 || len(evs) != 4 {
		t.Fatalf("%d events, %d dropped; want 4 and 6", len(evs), dropped)
	}
	for i, e := range evs {
		if e.Start != int64(6+i) {
			t.Errorf("event %d starts at %d, want %d", i, e.Start, 6+i)
		}
	}
	// Drain gives the same and empties the ring; the dropped count goes on.
	if evs2, dropped2 := tr.Drain(); len(evs2) != 4 || dropped2 != 6 {
		t.Errorf("Drain: %d events, %d dropped; want 4 and 6", len(evs2), dropped2)
	}
	tr.Record(trace.Event{Op: "Recv", Start: 99})
	if evs3, dropped3 := tr.Events(); len(evs3) != 1 || evs3[0].Start != 99 || dropped3 != 6 {
		t.Errorf("after Drain and one event: %v, %d dropped; want that event and 6", evs3, dropped3)
	}
	if trace.Start(0, 0); trace.On() != nil {
		t.Error("tracing still on after Start(0, 0)")
	}
}

// TestFlowsMatch: a send and the receive that matched it, counted on
// each side, name the same flow; the next message on the same (peer,
// context, tag) another.
func TestFlowsMatch(t *testing.T) {
	trace.Start(0, 16)
	a := trace.On()
	trace.Start(1, 16)
	b := trace.On()
	defer trace.Start(0, 0)
	s1, s2 := a.Sent(1, 7, 3), a.Sent(1, 7, 3)
	r1, r2 := b.Arrived(0, 7, 3), b.Arrived(0, 7, 3)
	if s1 != r1 || s2 != r2 || s1 == s2 {
		t.Errorf("sends %v %v, receives %v %v", s1, s2, r1, r2)
	}
	if other := a.Sent(1, 7, 4); other.N != 0 {
		t.Errorf("another tag's first message is number %d", other.N)
	}
}

// TestWrite: the file is JSON in the trace-event format: a named track
// per rank (pid rank+1), complete events with their arguments, flows whose
// ends share a numeric id, and what was dropped or is missing.
func TestWrite(t *testing.T) {
	f := trace.Flow{Src: 0, Dst: 1, Comm: 0, Tag: 5, N: 0}
	ranks := []trace.RankTrace{
		{Rank: 0, Name: "rank 0 on h1", Dropped: 2, Events: []trace.Event{
			{Start: 1500, Flags: trace.FlowOut, Flow: f},
			{Op: "Send", Start: 1000, Dur: 2000, Peer: 1, Tag: 5, Bytes: 8, Comm: "world", Flags: trace.HasPeer},
		}},
		{Rank: 1, Name: "rank 1 on h2", Offset: -500, Events: []trace.Event{
			{Start: 3500, Flags: trace.FlowIn, Flow: f},
			{Op: "Bcast", Start: 3000, Dur: 1000, Comm: "world", Root: 0, Flags: trace.HasRoot},
		}},
		{Rank: 2, Name: "rank 2 on h3", Missing: "gave no trace"},
	}
	var buf bytes.Buffer
	if err := trace.Write(&buf, ranks, 0); err != nil {
		t.Fatal(err)
	}
	var file struct {
		TraceEvents []map[string]any `json:"traceEvents"`
		OtherData   map[string]any   `json:"otherData"`
	}
	if err := json.Unmarshal(buf.Bytes(), &file); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	names := map[float64]any{}
	ids := map[float64]int{}
	for _, e := range file.TraceEvents {
		switch e["ph"] {
		case "M":
			if e["name"] == "process_name" {
				names[e["pid"].(float64)] = e["args"].(map[string]any)["name"]
			}
		case "s", "f":
			id, ok := e["id"].(float64)
			if !ok {
				t.Fatalf("flow id %v is not a number", e["id"])
			}
			ids[id]++
		case "X":
			if e["name"] == "Bcast" && (e["ts"].(float64) != 2.5 || e["args"].(map[string]any)["root"] != 0.0 || e["pid"] != 2.0) {
				t.Errorf("Bcast %v: want pid 2, ts 2.5 (its host's clock put on gorun's) and root 0", e)
			}
		}
	}
	if len(names) != 3 || names[1] != "rank 0 on h1" || names[3] != "rank 2 on h3" {
		t.Errorf("tracks %v, want pids 1, 2, 3 named by rank and host", names)
	}
	if len(ids) != 1 {
		t.Errorf("flow ids %v, want one with both ends", ids)
	}
	for _, k := range ids {
		if k != 2 {
			t.Errorf("flow ids %v, want one with both ends", ids)
		}
	}
	if d := file.OtherData["dropped_events"].(map[string]any); d["0"] != 2.0 {
		t.Errorf("dropped %v", d)
	}
	if m := file.OtherData["missing_ranks"].(map[string]any); m["2"] != "gave no trace" {
		t.Errorf("missing %v", m)
	}
	if _, err := tracecheck.Check(buf.Bytes()); err != nil {
		t.Errorf("Perfetto would not read it: %v\n%s", err, buf.String())
	}
}

// TestWritePerfetto: what Perfetto's JSON importer needs of a file
// (tracecheck encodes its rules) holds for the awkward cases: a message an
// Irecv matched between calls ends in the Wait that took it (not in a call
// made before that Wait); calls that
// overlap (two goroutines) go on two threads; a receive that a skewed
// clock puts before its send still gets its arrow; a message whose other
// end is missing gets none; and the old file (dotted string ids, pid 0)
// fails the check.
func TestWritePerfetto(t *testing.T) {
	f1 := trace.Flow{Src: 0, Dst: 1, Tag: 1}
	f2 := trace.Flow{Src: 1, Dst: 0, Tag: 2}
	f3 := trace.Flow{Src: 0, Dst: 1, Tag: 3}
	lost := trace.Flow{Src: 0, Dst: 1, Tag: 9}
	ranks := []trace.RankTrace{
		{Rank: 0, Name: "rank 0 on a", Events: []trace.Event{
			{Op: "Isend", Start: 100, Dur: 100, Comm: "world"},
			{Start: 150, Flags: trace.FlowOut, Flow: f1},
			{Op: "Send", Start: 2000, Dur: 10, Comm: "world"},
			{Start: 2005, Flags: trace.FlowOut, Flow: f3},
			{Start: 2006, Flags: trace.FlowOut, Flow: lost},
			// two goroutines: a Recv and a Send that overlap it
			{Op: "Recv", Start: 3000, Dur: 5000, Comm: "world", Peer: 1, Tag: 2, Flags: trace.HasPeer},
			{Op: "Send", Start: 4000, Dur: 6000, Comm: "world", Peer: 1, Tag: 7, Flags: trace.HasPeer},
			{Start: 7000, Flags: trace.FlowIn, Flow: f2},
		}},
		{Rank: 1, Name: "rank 1 on b", Offset: -10000, Events: []trace.Event{
			{Op: "Irecv", Start: 10000, Dur: 50, Comm: "world"},
			{Start: 10500, Flags: trace.FlowIn, Flow: f1}, // matched between calls
			{Op: "Isend", Start: 10600, Dur: 50, Comm: "world"},
			{Op: "Wait", Start: 11000, Dur: 200, Comm: "world"},
			{Op: "Send", Start: 15000, Dur: 100, Comm: "world"},
			{Start: 15050, Flags: trace.FlowOut, Flow: f2},
			// this clock runs 100 ns behind: the receive seems to come first
			{Op: "Recv", Start: 11990, Dur: 300, Comm: "world"},
			{Start: 12000, Flags: trace.FlowIn, Flow: f3},
		}},
	}
	var buf bytes.Buffer
	if err := trace.Write(&buf, ranks, 0); err != nil {
		t.Fatal(err)
	}
	rep, err := tracecheck.Check(buf.Bytes())
	if err != nil {
		t.Fatalf("Perfetto would not read it: %v\n%s", err, buf.String())
	}
	if rep.Flows != 3 {
		t.Errorf("%d flows, want 3 (f1, f2, f3; not the one with no receive)\n%s", rep.Flows, buf.String())
	}
	in := map[string]int{}
	tids := map[uint32]bool{}
	for _, s := range rep.Slices {
		in[fmt.Sprintf("%d %s", s.Pid, s.Name)] += s.FlowsIn
		if s.Pid == 1 {
			tids[s.Tid] = true
		}
	}
	if in["2 Wait"] != 1 || in["2 Irecv"] != 0 || in["2 Isend"] != 0 || in["2 Recv"] != 1 || in["1 Recv"] != 1 {
		t.Errorf("flow ends by call %v: want the Irecv's message in the Wait", in)
	}
	if len(tids) != 2 {
		t.Errorf("rank 0's calls on threads %v, want two (two calls overlap)", tids)
	}

	// The file as it was: dotted string ids, pid 0 for rank 0.
	old := `{"traceEvents":[
{"name":"Send","ph":"X","pid":1,"tid":1,"ts":1,"dur":5},
{"name":"message","cat":"message","ph":"s","id":"0.1.0.1.0","pid":1,"tid":1,"ts":2},
{"name":"Recv","ph":"X","pid":2,"tid":2,"ts":1,"dur":5},
{"name":"message","cat":"message","ph":"f","bp":"e","id":"0.1.0.1.0","pid":2,"tid":2,"ts":3}]}`
	if _, err := tracecheck.Check([]byte(old)); err == nil || !strings.Contains(err.Error(), "flow_invalid_id") {
		t.Errorf("dotted string ids pass the check (%v)", err)
	}
	if _, err := tracecheck.Check([]byte(`{"traceEvents":[{"name":"Send","ph":"X","pid":0,"tid":0,"ts":1,"dur":5}]}`)); err == nil {
		t.Error("pid 0 passes the check")
	}
	// A flow end after its slice ended binds to a stale slice.
	late := `{"traceEvents":[
{"name":"Send","ph":"X","pid":1,"tid":1,"ts":1,"dur":5},
{"name":"message","cat":"message","ph":"s","id":1,"pid":1,"tid":1,"ts":2},
{"name":"Recv","ph":"X","pid":2,"tid":2,"ts":1,"dur":5},
{"name":"message","cat":"message","ph":"f","bp":"e","id":1,"pid":2,"tid":2,"ts":7}]}`
	if _, err := tracecheck.Check([]byte(late)); err == nil {
		t.Error("a flow end outside its slice passes the check")
	}
}
