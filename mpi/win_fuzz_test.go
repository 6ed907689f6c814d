package mpi

import (
	"reflect"
	"testing"
)

// FuzzWinRequest feeds random requests to a window's server, as another
// rank could send them over the bus: each is refused or applied within the
// window, never a panic.
func FuzzWinRequest(f *testing.F) {
	data := AsBytes([]int64{1, 2})
	f.Add(append(appendWinRequest(nil, wPut, 0, winReplyTag, 1, 2), data...))
	f.Add(append(appendWinRequest(nil, wAcc, byte(AccBxor), winReplyTag, 2, 2), data...))
	f.Add(append(appendWinRequest(nil, wCAS, 0, winReplyTag+5, 3, 1), data...))
	f.Add(append(appendWinRequest(nil, wFetchOp, byte(AccMax), winReplyTag, 0, 1), data[:8]...))
	f.Add(appendWinRequest(nil, wGet, 0, winReplyTag, 0, 4))
	f.Add(appendWinRequest(nil, wGet, 0, winReplyTag, 3, 1<<40))
	f.Fuzz(func(t *testing.T, b []byte) {
		w := &Win[int64]{local: make([]int64, 4), kind: reflect.Int64}
		s := &winServer[int64]{w: w, c: &Comm{}}
		q, ok := parseWinRequest(b)
		if !ok || q.kind == wStop || q.kind >= wLock {
			return // the server's loop takes these itself
		}
		msg, err := s.apply(q)
		if err == nil && (len(msg) == 0 || msg[0] != rwOK) {
			t.Fatalf("reply %v without an error", msg)
		}
	})
}
