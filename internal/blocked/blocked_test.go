package blocked_test

import (
	"context"
	"encoding/json"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

func recv(peer, tag int) blocked.Call {
	return blocked.Call{Op: "Recv", Comm: "world", Peer: peer, PeerWorld: peer, Tag: tag, Root: blocked.None, Bytes: -1, For: 5 * time.Second, Site: "solver.go:42"}
}

func barrier(seq uint32) blocked.Call {
	return blocked.Call{Op: "Barrier", Coll: true, Comm: "world", Peer: blocked.None, PeerWorld: blocked.None, Tag: blocked.None, Root: blocked.None, Bytes: -1, Seq: seq, For: time.Second, Site: "step.go:9"}
}

func in(calls ...blocked.Call) *blocked.State {
	return &blocked.State{Inited: true, Calls: calls}
}

func world(states ...*blocked.State) []blocked.Rank {
	out := make([]blocked.Rank, len(states))
	for i, st := range states {
		out[i] = blocked.Rank{Rank: i, State: st}
	}
	return out
}

var computing = &blocked.State{Inited: true}

func TestCallString(t *testing.T) {
	send := blocked.Call{Op: "Send", Send: true, Comm: "world/dup1", Peer: 3, PeerWorld: 3, Tag: 0, Root: blocked.None, Bytes: 3 << 20}
	any := recv(blocked.Any, blocked.Any)
	bcast := barrier(2)
	bcast.Op, bcast.Root = "Bcast", 0
	for c, want := range map[*blocked.Call]string{
		new(recv(1, 7)): "Recv(src=1, tag=7, comm=world)",
		&any:            "Recv(src=any, tag=any, comm=world)",
		&send:           "Send(dst=3, tag=0, 3.0 MiB, comm=world/dup1)",
		new(barrier(1)): "Barrier(world)",
		&bcast:          "Bcast(root=0, world)",
	} {
		if got := c.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	lines := blocked.Lines(blocked.Rank{Rank: 0, State: in(recv(1, 7))})
	if want := "rank 0: Recv(src=1, tag=7, comm=world) blocked 5.0s at solver.go:42"; !reflect.DeepEqual(lines, []string{want}) {
		t.Errorf("lines %q, want %q", lines, want)
	}
}

func TestVerdict(t *testing.T) {
	exited := blocked.Rank{Rank: 2, Ended: "exited with status 0 after closing its world"}
	moving := world(in(recv(1, 0)), in(recv(0, 0)))
	moving[1].Moving = true
	mapCall := barrier(2) // pool numbers its calls on its own: Map call 2 is not Barrier call 2
	mapCall.Op = "Map"
	for _, tc := range []struct {
		name  string
		ranks []blocked.Rank
		want  []string // each a substring of one line, in order
	}{
		{"cycle", world(in(recv(1, 7)), in(recv(0, 7))),
			[]string{"deadlock: rank 0 waits for rank 1, rank 1 waits for rank 0"}},
		{"ring of three", world(in(recv(2, 0)), in(recv(0, 0)), in(recv(1, 0))),
			[]string{"deadlock: rank 0 waits for rank 2, rank 2 waits for rank 1, rank 1 waits for rank 0"}},
		{"any source", world(in(recv(blocked.Any, 0)), in(recv(blocked.Any, 0))),
			[]string{"deadlock: rank 0 waits for rank 1, rank 1 waits for rank 0"}},
		{"barrier and a recv", world(in(barrier(1)), in(barrier(1)), in(barrier(1)), in(recv(0, 0))),
			[]string{"deadlock: rank 0 waits for rank 3, rank 3 waits for rank 0",
				"Barrier(world) (call 1): ranks 0-2 in it, rank 3 not: rank 3 is in Recv(src=0, tag=0, comm=world) at solver.go:42"}},
		{"waits for a closed rank", append(world(in(recv(2, 0)), computing), exited),
			[]string{"stuck: rank 0 waits in Recv(src=2, tag=0, comm=world) for rank 2, which exited with status 0 after closing its world"}},
		{"barrier without a rank that left", append(world(in(barrier(4)), in(barrier(4))), exited),
			[]string{"stuck: ranks 0, 1 blocked for good", "Barrier(world) (call 4): ranks 0, 1 in it, rank 2 not: rank 2 exited with status 0 after closing its world"}},
		{"one computes", world(computing, in(recv(0, 0)), in(recv(0, 0))),
			[]string{"not a deadlock: rank 0 still running outside gorun's calls"}},
		{"waits on one that waits on one that computes", world(in(recv(1, 0)), in(recv(2, 0)), computing),
			[]string{"not a deadlock: rank 2 still running"}},
		{"a rank that moves", moving, []string{"not a deadlock"}},
		{"two calls of one number", world(in(mapCall), in(barrier(2))),
			[]string{"deadlock: rank 0 waits for rank 1, rank 1 waits for rank 0"}},
		{"every rank in the call", world(in(barrier(1)), in(barrier(1))), []string{"not a deadlock: the blocked ranks' messages are under way"}},
		{"silent rank", world(in(recv(1, 0)), nil), []string{"not a deadlock: rank 1 still running"}},
		{"nothing blocked", world(computing, computing), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := blocked.Verdict(tc.ranks)
			if len(got) < len(tc.want) || (tc.want == nil && got != nil) {
				t.Fatalf("verdict %q, want lines containing %q", got, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("line %d: %q, want it to contain %q (all: %q)", i, got[i], w, got)
				}
			}
		})
	}
}

func TestAllBlockedAndMoved(t *testing.T) {
	if !blocked.AllBlocked(world(in(recv(1, 0)), in(recv(0, 0)))) {
		t.Error("two ranks in Recv: not all blocked")
	}
	if blocked.AllBlocked(world(in(recv(1, 0)), computing)) {
		t.Error("a computing rank counted as blocked")
	}
	done := world(in(recv(1, 0)), nil)
	done[1].Ended = "exited"
	if !blocked.AllBlocked(done) {
		t.Error("an ended rank counted as running")
	}
	a := &blocked.State{Progress: 5, CPU: time.Second}
	for _, tc := range []struct {
		b    blocked.State
		want bool
	}{
		{blocked.State{Progress: 5, CPU: time.Second + 10*time.Millisecond}, false},
		{blocked.State{Progress: 6, CPU: time.Second}, true},
		{blocked.State{Progress: 5, CPU: 2 * time.Second}, true},
	} {
		if got := blocked.Moved(a, &tc.b, time.Second); got != tc.want {
			t.Errorf("Moved(%+v, %+v) = %v, want %v", a, tc.b, got, tc.want)
		}
	}
}

// TestEnterSnapshot: an entered call shows, with the caller's line as its
// site, until it exits; a quiet context is told apart.
func TestEnterSnapshot(t *testing.T) {
	_, _, line, _ := runtime.Caller(0)
	e := blocked.Enter(recv(1, 2)) // the line after Caller's
	cs, _ := blocked.Snapshot()
	found := false
	for _, c := range cs {
		if c.Op == "Recv" && c.Tag == 2 {
			found = true
			if want := "blocked_test.go:" + strconv.Itoa(line+1); c.Site != want {
				t.Errorf("site %q, want %q", c.Site, want)
			}
		}
	}
	if !found {
		t.Fatalf("entered call not in the snapshot %+v", cs)
	}
	before := blocked.Now(true, false).Progress
	e.Exit()
	st := blocked.Now(true, false)
	for _, c := range st.Calls {
		if c.Op == "Recv" && c.Tag == 2 {
			t.Fatal("exited call still in the snapshot")
		}
	}
	if st.Progress != before+1 {
		t.Errorf("progress %d after an exit, want %d", st.Progress, before+1)
	}
	if b, err := json.Marshal(st); err != nil || !json.Valid(b) {
		t.Errorf("state does not marshal: %v", err)
	}
	if blocked.IsQuiet(context.Background()) || !blocked.IsQuiet(blocked.Quiet(context.Background())) {
		t.Error("IsQuiet does not tell a Quiet context")
	}
}

// TestSnapshotBound: a snapshot holds at most MaxCalls calls, the longest
// blocked first, and counts the rest.
func TestSnapshotBound(t *testing.T) {
	var es []blocked.Entry
	for i := range blocked.MaxCalls + 5 {
		es = append(es, blocked.Enter(recv(1, 1000+i)))
	}
	cs, more := blocked.Snapshot()
	for _, e := range es {
		e.Exit()
	}
	if len(cs) != blocked.MaxCalls || more < 5 {
		t.Fatalf("%d calls and %d more, want %d and at least 5", len(cs), more, blocked.MaxCalls)
	}
	for i := 1; i < len(cs); i++ {
		if cs[i].For > cs[i-1].For {
			t.Fatalf("call %d blocked longer than call %d", i, i-1)
		}
	}
}

// TestStatsAppendJSON: the hand-written encoding of a rank's statistics is
// byte for byte what encoding/json writes (gorun decodes it with
// encoding/json), for operation names with every kind of character.
func TestStatsAppendJSON(t *testing.T) {
	names := []string{"Recv", "", `q"uo\te`, "a\nb\rc\td\be\ff", "\x00\x1f<>&", "é€😀", "\u2028\u2029", "bad\xffutf8\xc3"}
	cases := []blocked.Stats{
		{},
		{SentMsgs: 1, SentBytes: -2, RecvMsgs: 1 << 62, RecvBytes: 7, Largest: 8, Ops: []blocked.OpStat{},
			BusFrames: 9, BusBytes: 10, RingFrames: 11, RingBytes: 12, CopyBytes: 13},
	}
	for i, n := range names {
		cases = append(cases, blocked.Stats{SentMsgs: int64(i), Ops: []blocked.OpStat{
			{Op: n, Calls: int64(i), Blocked: time.Duration(i) * time.Millisecond}, {Op: "Send", Calls: -1}}})
	}
	for r := rune(0); r < 0x3000; r++ {
		cases = append(cases, blocked.Stats{Ops: []blocked.OpStat{{Op: "x" + string(r) + "y"}}})
	}
	for _, st := range cases {
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.AppendJSON([]byte("prefix ")); string(got) != "prefix "+string(want) {
			t.Fatalf("AppendJSON of %+v:\n got %s\nwant prefix %s", st, got, want)
		}
	}
}
