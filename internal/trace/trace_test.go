package trace_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/gorun-hpc/gorun/internal/trace"
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
// per rank, complete events with their arguments, flows whose ends share
// an id, and what was dropped or is missing.
func TestWrite(t *testing.T) {
	f := trace.Flow{Src: 0, Dst: 1, Comm: 0, Tag: 5, N: 0}
	ranks := []trace.RankTrace{
		{Rank: 0, Name: "rank 0 (h1)", Dropped: 2, Events: []trace.Event{
			{Start: 1500, Flags: trace.FlowOut, Flow: f},
			{Op: "Send", Start: 1000, Dur: 2000, Peer: 1, Tag: 5, Bytes: 8, Comm: "world", Flags: trace.HasPeer},
		}},
		{Rank: 1, Name: "rank 1 (h2)", Offset: -500, Events: []trace.Event{
			{Start: 3500, Flags: trace.FlowIn, Flow: f},
			{Op: "Bcast", Start: 3000, Dur: 1000, Comm: "world", Root: 0, Flags: trace.HasRoot},
		}},
		{Rank: 2, Name: "rank 2", Missing: "gave no trace"},
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
	var names []any
	ids := map[string]int{}
	for _, e := range file.TraceEvents {
		switch e["ph"] {
		case "M":
			if e["name"] == "process_name" {
				names = append(names, e["args"].(map[string]any)["name"])
			}
		case "s", "f":
			ids[e["id"].(string)]++
		case "X":
			if e["name"] == "Bcast" && (e["ts"].(float64) != 2.5 || e["args"].(map[string]any)["root"] != 0.0) {
				t.Errorf("Bcast %v: want ts 2.5 (its host's clock put on gorun's) and root 0", e)
			}
		}
	}
	if len(names) != 3 || names[0] != "rank 0 (h1)" {
		t.Errorf("tracks %v", names)
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
}
