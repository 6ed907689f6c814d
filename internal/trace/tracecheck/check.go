// Package tracecheck checks a gorun --trace file against the rules by
// which Perfetto's JSON importer reads a Chrome trace-event file, so that
// tests can tell that the file opens as promised: every call a slice on its
// rank's track, every message an arrow from its send's call to its
// receive's. It is test support: nothing in gorun uses it.
//
// The rules are those of google/perfetto's
// src/trace_processor/importers/json/json_trace_parser_impl.cc (what each
// phase does), json_trace_tokenizer.cc (events sorted by timestamp before
// they are parsed) and json_trace_utils.cc (CoerceToNs, CoerceToUint32),
// with src/trace_processor/importers/common/flow_tracker.cc and
// slice_tracker.cc, which bind flows to slices:
//
//   - pid and tid are integers in [0, 2^32) (a string pid is an interned
//     name, not a process); pid 0 is the idle process, so no event has it.
//   - ts and dur are microseconds; a float is multiplied by 1000 and
//     truncated to whole nanoseconds.
//   - "X" needs a dur (an X without one is dropped); "B"/"E" nest on their
//     thread, each E closing the innermost open B.
//   - A flow's id ("s", "t", "f") is a number, or a string read as a
//     hexadecimal number; any other string is an invalid id and the flow is
//     dropped (stats flow_invalid_id). Ids name flows with cat and name.
//   - "s" binds to the slice open on its thread at its time (none:
//     flow_no_enclosing_slice); a second "s" with the same id is
//     flow_duplicate_id; an "f" before its "s" is flow_end_without_start;
//     an "f" with "bp":"e" binds to the slice open on its thread, and one
//     without it to the next slice that begins there.
//   - The open slice is the top of the thread's stack, which drops a slice
//     only when a later one begins after its end: a flow after its slice
//     ended would bind to that stale slice. So this check asks more than
//     the importer: a flow's time lies inside the slice it binds to.
//   - Metadata: process_name and thread_name take args.name.
package tracecheck

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Slice is a call's slice as the importer makes it.
type Slice struct {
	Pid, Tid   uint32
	Name       string
	Start, End int64 // nanoseconds
	Args       map[string]any
	FlowsOut   int // flows that start in it
	FlowsIn    int // flows that end in it
}

// Report is what a file holds, as the importer reads it.
type Report struct {
	Processes map[uint32]string // pid -> process_name
	Slices    []*Slice
	Flows     int // flows with both ends bound
	OtherData map[string]any
}

// Check reads a trace-event file and returns what the importer would make
// of it, or the first rule it breaks.
func Check(file []byte) (*Report, error) {
	var doc struct {
		TraceEvents []json.RawMessage `json:"traceEvents"`
		OtherData   map[string]any    `json:"otherData"`
	}
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a JSON trace-event object: %w", err)
	}
	type event struct {
		i    int // place in the file
		ph   string
		name string
		cat  string
		pid  uint32
		tid  uint32
		ts   int64
		dur  int64
		id   uint64
		bp   string
		args map[string]any
	}
	rep := &Report{Processes: map[uint32]string{}, OtherData: doc.OtherData}
	var evs []event
	for i, raw := range doc.TraceEvents {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return nil, fmt.Errorf("event %d: %v", i, err)
		}
		fail := func(format string, a ...any) error {
			return fmt.Errorf("event %d (%s): %s", i, raw, fmt.Sprintf(format, a...))
		}
		ph, ok := m["ph"].(string)
		if !ok || ph == "" {
			return nil, fail("no ph")
		}
		e := event{i: i, ph: ph}
		e.name, _ = m["name"].(string)
		e.cat, _ = m["cat"].(string)
		e.args, _ = m["args"].(map[string]any)
		pid, err := uint32Of(m["pid"])
		if err != nil {
			return nil, fail("pid: %v", err)
		}
		if pid == 0 {
			return nil, fail("pid 0 is the idle process in Perfetto")
		}
		e.pid = pid
		e.tid = pid
		if _, ok := m["tid"]; ok {
			if e.tid, err = uint32Of(m["tid"]); err != nil {
				return nil, fail("tid: %v", err)
			}
		}
		if ph != "M" {
			if e.ts, err = nanos(m["ts"]); err != nil {
				return nil, fail("ts: %v", err)
			}
		}
		switch ph {
		case "M":
			name, _ := e.args["name"].(string)
			switch e.name {
			case "process_name":
				if name == "" {
					return nil, fail("process_name without args.name")
				}
				rep.Processes[e.pid] = name
			case "thread_name":
				if name == "" {
					return nil, fail("thread_name without args.name")
				}
			}
			continue
		case "X":
			if e.dur, err = nanos(m["dur"]); err != nil {
				return nil, fail("an X event needs a dur: %v", err)
			}
			if e.dur < 0 {
				return nil, fail("negative dur")
			}
		case "B", "E":
		case "s", "t", "f":
			if e.id, err = flowID(m["id"]); err != nil {
				return nil, fail("flow id: %v", err)
			}
			e.bp, _ = m["bp"].(string)
			if ph == "f" && e.bp != "e" {
				return nil, fail(`a flow end without "bp":"e" binds to the next slice that begins, not to its call`)
			}
		default:
			return nil, fail("phase %q is not one gorun writes", ph)
		}
		evs = append(evs, e)
	}
	// The tokenizer sorts events by time; equal times keep the file's order.
	slices.SortStableFunc(evs, func(a, b event) int { return cmp.Compare(a.ts, b.ts) })

	type thread struct{ pid, tid uint32 }
	stacks := map[thread][]*Slice{}
	type flowKey struct {
		id       uint64
		cat, nam string
	}
	begun := map[flowKey]*Slice{}
	ended := map[flowKey]bool{}
	open := func(th thread, ts int64, ph string, i int) (*Slice, error) {
		st := stacks[th]
		if len(st) == 0 {
			return nil, fmt.Errorf("event %d: flow %q at %dns on pid %d tid %d: no enclosing slice (flow_no_enclosing_slice)", i, ph, ts, th.pid, th.tid)
		}
		top := st[len(st)-1]
		if ts < top.Start || ts > top.End {
			return nil, fmt.Errorf("event %d: flow %q at %dns on pid %d tid %d binds to %s [%d, %d], which does not hold it", i, ph, ts, th.pid, th.tid, top.Name, top.Start, top.End)
		}
		return top, nil
	}
	for _, e := range evs {
		th := thread{e.pid, e.tid}
		switch e.ph {
		case "X", "B":
			st := stacks[th]
			// Slices that ended before this one begins are closed.
			for len(st) > 0 && st[len(st)-1].End != math.MaxInt64 && st[len(st)-1].End < e.ts {
				st = st[:len(st)-1]
			}
			s := &Slice{Pid: e.pid, Tid: e.tid, Name: e.name, Start: e.ts, End: math.MaxInt64, Args: e.args}
			if e.ph == "X" {
				s.End = e.ts + e.dur
			}
			if len(st) > 0 {
				if p := st[len(st)-1]; s.End > p.End {
					return nil, fmt.Errorf("event %d: %s [%d, %d] overlaps %s [%d, %d] on pid %d tid %d: slices nest or are apart", e.i, s.Name, s.Start, s.End, p.Name, p.Start, p.End, e.pid, e.tid)
				}
			}
			stacks[th] = append(st, s)
			rep.Slices = append(rep.Slices, s)
		case "E":
			st := stacks[th]
			for len(st) > 0 && st[len(st)-1].End != math.MaxInt64 {
				st = st[:len(st)-1]
			}
			if len(st) == 0 {
				return nil, fmt.Errorf("event %d: E with no open B on pid %d tid %d", e.i, e.pid, e.tid)
			}
			st[len(st)-1].End = e.ts
			stacks[th] = st[:len(st)-1]
		case "s":
			s, err := open(th, e.ts, e.ph, e.i)
			if err != nil {
				return nil, err
			}
			k := flowKey{e.id, e.cat, e.name}
			if begun[k] != nil {
				return nil, fmt.Errorf("event %d: a second flow start with id %d (flow_duplicate_id)", e.i, e.id)
			}
			begun[k] = s
			s.FlowsOut++
		case "t":
			return nil, fmt.Errorf("event %d: a flow step: gorun's messages have two ends", e.i)
		case "f":
			s, err := open(th, e.ts, e.ph, e.i)
			if err != nil {
				return nil, err
			}
			k := flowKey{e.id, e.cat, e.name}
			if begun[k] == nil {
				return nil, fmt.Errorf("event %d: flow end with id %d before its start (flow_end_without_start)", e.i, e.id)
			}
			if ended[k] {
				return nil, fmt.Errorf("event %d: a second flow end with id %d", e.i, e.id)
			}
			ended[k] = true
			s.FlowsIn++
			rep.Flows++
		}
	}
	for k := range begun {
		if !ended[k] {
			return nil, fmt.Errorf("flow %d starts and never ends", k.id)
		}
	}
	return rep, nil
}

// uint32Of is CoerceToUint32: an integer in [0, 2^32).
func uint32Of(v any) (uint32, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || i < 0 || i > math.MaxUint32 {
		return 0, fmt.Errorf("%v is not an integer in [0, 2^32)", n)
	}
	return uint32(i), nil
}

// nanos is CoerceToNs: microseconds to nanoseconds, a float truncated.
func nanos(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return i * 1000, nil
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil {
		return 0, err
	}
	return int64(f * 1000), nil
}

// flowID is MaybeExtractFlowIdentifier: a number, or a hexadecimal string.
// A number above 2^53 does not survive JSON readers that use doubles.
func flowID(v any) (uint64, error) {
	switch id := v.(type) {
	case json.Number:
		u, err := strconv.ParseUint(id.String(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%v is not a whole number", id)
		}
		if u >= 1<<53 {
			return 0, fmt.Errorf("%d does not fit a double exactly", u)
		}
		return u, nil
	case string:
		u, err := strconv.ParseUint(id, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is read as a hexadecimal number, and is not one (flow_invalid_id)", id)
		}
		return u, nil
	case nil:
		return 0, errors.New("no id")
	}
	return 0, fmt.Errorf("%v is neither a number nor a string", v)
}
