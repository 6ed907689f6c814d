package trace

import (
	"bufio"
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
)

// RankTrace is one rank's part of the file Write writes.
type RankTrace struct {
	Rank    int
	Name    string // the track's name: "rank 3 on host"
	Offset  int64  // nanoseconds to add to the rank's clock to get gorun's
	Dropped uint64 // events the rank's ring dropped
	Missing string // why there are no events (it did not close its world), or ""
	Events  []Event
}

// margin is how far inside its call's slice a flow's end is put, in
// nanoseconds: a viewer reads a timestamp in microseconds as a float and
// truncates it to whole nanoseconds, which may take one off each of the
// slice's start, its duration and the flow's time.
const margin = 2

// Write writes ranks as a Chrome trace-event file (JSON, which Perfetto
// and chrome://tracing open): a process per rank (pid rank+1: Perfetto
// takes pid 0 for the idle process), named "rank N on host"; a complete
// event (X) per call, with its arguments, on the rank's first thread, or on
// another of its threads where calls overlap (calls made by several
// goroutines at once), so that the slices of a thread never overlap; and a
// flow per message, from the call that sent it to the call that received
// it, both of whose ends lie inside their call's slice (a receive that
// completed between calls, an Irecv's, ends in the rank's next call: the
// Wait that took it). Flow ids are numbers, unique in the file. A message
// with one end only (the other rank's ring dropped it, or the rank gave no
// trace) has no flow. Times are microseconds from t0 (Unix nanoseconds,
// gorun's clock). What was dropped or is missing is said in otherData.
func Write(w io.Writer, ranks []RankTrace, t0 int64) error {
	tracks := make([]track, len(ranks))
	maxRank := 0
	for i := range ranks {
		tracks[i] = layout(&ranks[i], t0)
		maxRank = max(maxRank, ranks[i].Rank)
	}
	flows := pairFlows(tracks)

	bw := bufio.NewWriter(w)
	bw.WriteString("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")
	first := true
	line := func(b []byte) {
		if !first {
			bw.WriteString(",\n")
		}
		first = false
		bw.Write(b)
	}
	emit := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		line(b)
		return nil
	}
	type meta struct {
		Name string         `json:"name"`
		Ph   string         `json:"ph"`
		Pid  int            `json:"pid"`
		Tid  int            `json:"tid"`
		Args map[string]any `json:"args"`
	}
	type complete struct {
		Name string         `json:"name"`
		Cat  string         `json:"cat"`
		Ph   string         `json:"ph"`
		Pid  int            `json:"pid"`
		Tid  int            `json:"tid"`
		Ts   micros         `json:"ts"`
		Dur  micros         `json:"dur"`
		Args map[string]any `json:"args,omitempty"`
	}
	type flow struct {
		Name string `json:"name"`
		Cat  string `json:"cat"`
		Ph   string `json:"ph"`
		ID   uint64 `json:"id"`
		Pid  int    `json:"pid"`
		Tid  int    `json:"tid"`
		Ts   micros `json:"ts"`
		Bp   string `json:"bp"`
	}
	dropped := map[string]uint64{}
	missing := map[string]string{}
	noFlow := map[string]int{}
	for i := range ranks {
		r, tr := &ranks[i], &tracks[i]
		pid := r.Rank + 1
		if err := emit(meta{"process_name", "M", pid, pid, map[string]any{"name": r.Name}}); err != nil {
			return err
		}
		emit(meta{"process_sort_index", "M", pid, pid, map[string]any{"sort_index": r.Rank}})
		for lane := range tr.lanes {
			name := "gorun calls"
			if lane > 0 {
				name = "gorun calls (" + strconv.Itoa(lane+1) + ")"
			}
			emit(meta{"thread_name", "M", pid, tid(r.Rank, lane, maxRank), map[string]any{"name": name}})
		}
		if r.Dropped > 0 {
			dropped[strconv.Itoa(r.Rank)] = r.Dropped
		}
		if r.Missing != "" {
			missing[strconv.Itoa(r.Rank)] = r.Missing
		}
		lost := tr.unbound
		for _, s := range tr.slices {
			e := s.e
			args := map[string]any{"comm": e.Comm}
			if e.Flags&HasPeer != 0 {
				args["peer"], args["tag"] = e.Peer, e.Tag
			}
			if e.Flags&HasRoot != 0 {
				args["root"] = e.Root
			}
			if e.Bytes != 0 {
				args["bytes"] = e.Bytes
			}
			if e.Tasks != 0 {
				args["tasks"] = e.Tasks
			}
			if e.Flags&Unfinished != 0 {
				args["unfinished"] = "still blocked when the job was stopped"
			}
			t := tid(r.Rank, s.lane, maxRank)
			if err := emit(complete{e.Op, "call", "X", pid, t, micros(s.start), micros(s.end - s.start), args}); err != nil {
				return err
			}
			// The slice's flows, each strictly inside it.
			for _, p := range s.points {
				id, ok := flows[p.f]
				if !ok {
					lost++
					continue
				}
				ph := "f"
				if p.out {
					ph = "s"
				}
				emit(flow{"message", "message", ph, id, pid, t, micros(p.at), "e"})
			}
		}
		if lost > 0 {
			noFlow[strconv.Itoa(r.Rank)] = lost
		}
	}
	bw.WriteString("\n],\"otherData\":")
	od, err := json.Marshal(map[string]any{"dropped_events": dropped, "missing_ranks": missing, "messages_without_flow": noFlow,
		"note": "dropped_events: events a rank's ring (--trace-size) dropped, oldest first; missing_ranks: ranks that gave no trace; " +
			"messages_without_flow: a rank's message ends drawn with no flow (the other end is not in the trace, or no call of the rank holds it)"})
	if err != nil {
		return err
	}
	bw.Write(od)
	bw.WriteString("}\n")
	return bw.Flush()
}

// micros is a time in nanoseconds, written as microseconds with three
// decimals (exact, where a float64 division is not).
type micros int64

func (m micros) MarshalJSON() ([]byte, error) {
	ns := int64(m)
	var b []byte
	if ns < 0 {
		b, ns = append(b, '-'), -ns
	}
	b = strconv.AppendInt(b, ns/1000, 10)
	frac := ns % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b, nil
}

// tid is the thread id of a rank's lane: the rank's pid for its first
// lane; thread ids are unique across processes, as a viewer expects.
func tid(rank, lane, maxRank int) int {
	return lane*(maxRank+2) + rank + 1
}

// track is one rank's calls laid out for the file.
type track struct {
	slices  []*slice // by start
	lanes   []int64  // each lane's last slice's end
	unbound int      // message ends that no call of the rank holds
}

// slice is a call: [start, end] in nanoseconds from t0.
type slice struct {
	e          Event
	start, end int64
	lane       int
	points     []point
}

// point is one end of a message, bound to the call that sent or received
// it, at time at inside that call's slice.
type point struct {
	f   Flow
	out bool
	at  int64
}

// layout binds rank r's message ends to its calls, and puts its calls in
// lanes of slices that do not overlap.
func layout(r *RankTrace, t0 int64) track {
	var tr track
	var ends []Event
	for _, e := range r.Events {
		switch {
		case e.Flags&(FlowOut|FlowIn) != 0:
			ends = append(ends, e)
		case e.Op != "":
			s := &slice{e: e, start: e.Start + r.Offset - t0}
			s.end = s.start + max(e.Dur, 0)
			tr.slices = append(tr.slices, s)
		}
	}
	// By start; of two that start together the longer first, so that a
	// call made inside another follows it.
	slices.SortStableFunc(tr.slices, func(a, b *slice) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(b.end, a.end))
	})
	for _, e := range ends {
		at := e.Start + r.Offset - t0
		s := bind(tr.slices, at, e.Flags&FlowOut != 0, e.Flow.Tag)
		if s == nil {
			tr.unbound++
			continue
		}
		s.points = append(s.points, point{f: e.Flow, out: e.Flags&FlowOut != 0, at: at})
	}
	// A slice that holds a flow's end is at least 2*margin long, and the
	// end at least margin inside it.
	for _, s := range tr.slices {
		if len(s.points) == 0 {
			continue
		}
		s.end = max(s.end, s.start+2*margin)
		for i := range s.points {
			s.points[i].at = min(max(s.points[i].at, s.start+margin), s.end-margin)
		}
		slices.SortStableFunc(s.points, func(a, b point) int { return cmp.Compare(a.at, b.at) })
	}
	// Lanes: each slice goes to the first lane whose last slice ended
	// before it starts. A thread's slices then never overlap, nor nest, so
	// that the slice open when a flow's end comes is its call's.
	for _, s := range tr.slices {
		lane := slices.IndexFunc(tr.lanes, func(end int64) bool { return end < s.start })
		if lane < 0 {
			lane = len(tr.lanes)
			tr.lanes = append(tr.lanes, 0)
		}
		s.lane, tr.lanes[lane] = lane, s.end
	}
	if len(tr.lanes) == 0 {
		tr.lanes = []int64{0}
	}
	return tr
}

// bind returns the call that holds a message end at time at: the
// innermost call in progress then (the latest started), preferring one
// with the message's tag (goroutines may call at once); failing that, for
// a receive, the first Wait or Test call that starts after it (the call
// that took a message an Irecv had matched), or else the first call, and
// for a send the last call that started before it.
func bind(ss []*slice, at int64, out bool, tag int) *slice {
	var holder, tagged *slice
	for _, s := range ss {
		if s.start > at {
			break
		}
		if s.end >= at {
			holder = s
			if s.e.Flags&HasPeer != 0 && s.e.Tag == tag {
				tagged = s
			}
		}
	}
	if tagged != nil {
		return tagged
	}
	if holder != nil {
		return holder
	}
	i, _ := slices.BinarySearchFunc(ss, at, func(s *slice, t int64) int { return cmp.Compare(s.start, t) })
	if out {
		if i > 0 {
			return ss[i-1]
		}
		return nil
	}
	for j := i; j < len(ss); j++ {
		if op := ss[j].e.Op; strings.HasPrefix(op, "Wait") || strings.HasPrefix(op, "Test") {
			return ss[j]
		}
	}
	if i < len(ss) {
		return ss[i]
	}
	return nil
}

// pairFlows numbers the messages whose two ends are both bound, from 1,
// in the order their sends appear: a flow's id in the file. A receive
// earlier than its send on gorun's clock (two hosts' clocks that disagree
// by more than the message took) is moved to the send's time when its call
// still holds it there; otherwise the message has no flow.
func pairFlows(tracks []track) map[Flow]uint64 {
	type ends struct {
		out, in *point
		inSlice *slice
	}
	seen := map[Flow]*ends{}
	var order []Flow
	for i := range tracks {
		for _, s := range tracks[i].slices {
			for j := range s.points {
				p := &s.points[j]
				x := seen[p.f]
				if x == nil {
					x = &ends{}
					seen[p.f] = x
					order = append(order, p.f)
				}
				if p.out {
					x.out = p
				} else {
					x.in, x.inSlice = p, s
				}
			}
		}
	}
	ids := map[Flow]uint64{}
	for _, f := range order {
		x := seen[f]
		if x.out == nil || x.in == nil {
			continue
		}
		if x.in.at < x.out.at {
			if x.out.at > x.inSlice.end-margin {
				continue
			}
			x.in.at = x.out.at
		}
		ids[f] = uint64(len(ids) + 1)
	}
	return ids
}
