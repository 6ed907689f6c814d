package trace

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// RankTrace is one rank's part of the file Write writes.
type RankTrace struct {
	Rank    int
	Name    string // the track's name: "rank 3" or "rank 3 (host)"
	Offset  int64  // nanoseconds to add to the rank's clock to get gorun's
	Dropped uint64 // events the rank's ring dropped
	Missing string // why there are no events (it did not close its world), or ""
	Events  []Event
}

// Write writes ranks as a Chrome trace-event file (JSON, which Perfetto
// and chrome://tracing open): a track (process) per rank; a complete event
// per call, with its arguments; and a flow per message, from the send's
// call to the receive's, matched by Flow. Times are microseconds from t0
// (Unix nanoseconds, gorun's clock). What was dropped or is missing is
// said in otherData.
func Write(w io.Writer, ranks []RankTrace, t0 int64) error {
	bw := bufio.NewWriter(w)
	first := true
	emit := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if !first {
			bw.WriteString(",\n")
		}
		first = false
		_, err = bw.Write(b)
		return err
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
		Ts   float64        `json:"ts"`
		Dur  float64        `json:"dur"`
		Args map[string]any `json:"args,omitempty"`
	}
	type flow struct {
		Name string  `json:"name"`
		Cat  string  `json:"cat"`
		Ph   string  `json:"ph"`
		ID   string  `json:"id"`
		Pid  int     `json:"pid"`
		Tid  int     `json:"tid"`
		Ts   float64 `json:"ts"`
		Bp   string  `json:"bp,omitempty"`
	}
	us := func(r *RankTrace, ns int64) float64 { return float64(ns+r.Offset-t0) / 1e3 }
	bw.WriteString("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")
	dropped := map[string]uint64{}
	missing := map[string]string{}
	for i := range ranks {
		r := &ranks[i]
		if err := emit(meta{"process_name", "M", r.Rank, 0, map[string]any{"name": r.Name}}); err != nil {
			return err
		}
		emit(meta{"process_sort_index", "M", r.Rank, 0, map[string]any{"sort_index": r.Rank}})
		emit(meta{"thread_name", "M", r.Rank, 0, map[string]any{"name": "gorun calls"}})
		if r.Dropped > 0 {
			dropped[strconv.Itoa(r.Rank)] = r.Dropped
		}
		if r.Missing != "" {
			missing[strconv.Itoa(r.Rank)] = r.Missing
		}
		for _, e := range r.Events {
			switch {
			case e.Flags&FlowOut != 0:
				emit(flow{"message", "message", "s", e.Flow.id(), r.Rank, 0, us(r, e.Start), ""})
			case e.Flags&FlowIn != 0:
				emit(flow{"message", "message", "f", e.Flow.id(), r.Rank, 0, us(r, e.Start), "e"})
			case e.Op != "":
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
				if e.Flags&Unfinished != 0 {
					args["unfinished"] = "still blocked when the job was stopped"
				}
				emit(complete{e.Op, "call", "X", r.Rank, 0, us(r, e.Start), float64(e.Dur) / 1e3, args})
			}
		}
	}
	bw.WriteString("\n],\"otherData\":")
	od, err := json.Marshal(map[string]any{"dropped_events": dropped, "missing_ranks": missing,
		"note": "dropped_events: events a rank's ring (--trace-size) dropped, oldest first; missing_ranks: ranks that gave no trace"})
	if err != nil {
		return err
	}
	bw.Write(od)
	bw.WriteString("}\n")
	return bw.Flush()
}

// id is the flow's id in the file, the same at both ends.
func (f Flow) id() string {
	return fmt.Sprintf("%d.%d.%x.%d.%d", f.Src, f.Dst, f.Comm, f.Tag, f.N)
}
