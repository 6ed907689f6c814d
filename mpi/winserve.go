package mpi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"unsafe"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// winServer is a rank's side of one window: it answers every rank's
// requests (its own included) in a goroutine, and keeps the window's lock.
type winServer[T Number] struct {
	w    *Win[T]
	c    *Comm
	done chan struct{} // closed when serve returns

	exclusive int              // the exclusive holder, or -1
	shared    map[int]bool     // the shared holders
	waiting   []winWaiter      // Locks not granted yet, oldest first
	watches   map[int]*Request // a receive from each holder that fails when it is lost
	lost      chan int         // holders lost, from the watches
	nwaiting  atomic.Int32     // len(waiting), for tests
}

// winWaiter is a Lock waiting at its target.
type winWaiter struct {
	src, tag  int
	exclusive bool
}

func newWinServer[T Number](w *Win[T]) *winServer[T] {
	return &winServer[T]{w: w, c: w.c, done: make(chan struct{}), exclusive: -1,
		shared: map[int]bool{}, watches: map[int]*Request{}, lost: make(chan int)}
}

// serve answers requests until this rank's Free stops it, or the
// communicator fails.
func (s *winServer[T]) serve() {
	defer close(s.done)
	defer func() {
		for _, r := range s.watches {
			r.Cancel()
		}
	}()
	ctx := blocked.Quiet(context.Background())
	for {
		req := s.c.Irecv(AnySource, winReqTag)
		for wait := true; wait; {
			select {
			case <-req.Done():
				wait = false
			case r := <-s.lost:
				s.holderLost(r)
			}
		}
		st, err := req.Wait(ctx)
		if err != nil {
			return // the communicator failed: the ranks waiting on this one see it too
		}
		q, ok := parseWinRequest(req.Data())
		if !ok {
			continue // not a request of ours
		}
		if q.kind == wStop {
			if st.Source == s.c.Rank() {
				return
			}
			continue
		}
		s.handle(ctx, st.Source, q)
	}
}

func (s *winServer[T]) handle(ctx context.Context, src int, q winRequest) {
	defer func() { s.nwaiting.Store(int32(len(s.waiting))) }()
	switch q.kind {
	case wLock:
		s.waiting = append(s.waiting, winWaiter{src: src, tag: q.tag, exclusive: q.op == 1})
		s.grant(ctx)
		return
	case wUnlock:
		if !s.release(src) {
			s.reply(ctx, src, q.tag, rwError, []byte(fmt.Sprintf("mpi: Unlock: rank %d holds no lock on rank %d (Unlock without Lock)", src, s.c.Rank())))
			return
		}
		s.reply(ctx, src, q.tag, rwOK, nil)
		s.grant(ctx)
		return
	case wWithdraw:
		for i, wt := range s.waiting {
			if wt.src == src && wt.tag == q.tag {
				s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
				s.reply(ctx, src, q.tag, rwWithdrawn, nil)
				return
			}
		}
		// Granted already (the grant is on its way): release it.
		if s.release(src) {
			s.grant(ctx)
		}
		return
	}
	msg, err := s.apply(q)
	if err != nil {
		s.reply(ctx, src, q.tag, rwError, []byte(err.Error()))
		return
	}
	_ = s.c.Send(ctx, src, q.tag, msg)
}

// apply carries out a data request on the window's memory, under its lock,
// and returns the reply: rwOK and the data.
func (s *winServer[T]) apply(q winRequest) ([]byte, error) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	w := s.w
	n := len(w.local)
	name := [...]string{wPut: "Put", wGet: "Get", wAcc: "Accumulate", wFetchOp: "FetchAndOp", wCAS: "CompareAndSwap"}
	if int(q.kind) >= len(name) || name[q.kind] == "" {
		return nil, fmt.Errorf("mpi: window: unknown request %d from another rank: %w", q.kind, ErrProtocol)
	}
	op := name[q.kind]
	if q.offset > n || q.count > n-q.offset {
		return nil, errorf("mpi: %s: offset %d, %d elements, on rank %d, whose window has %d elements: %w",
			op, q.offset, q.count, s.c.Rank(), n, ErrWinRange)
	}
	if (q.kind == wFetchOp || q.kind == wCAS) && q.count != 1 {
		return nil, fmt.Errorf("mpi: %s of %d elements (one only): %w", op, q.count, ErrProtocol)
	}
	want := q.count * size
	switch q.kind {
	case wGet:
		want = 0
	case wCAS:
		want = 2 * size
	}
	if len(q.data) != want {
		return nil, fmt.Errorf("mpi: %s: %d bytes for %d elements of %d bytes: %w", op, len(q.data), q.count, size, ErrProtocol)
	}
	var in []T
	if want > 0 && (q.kind != wPut || !littleEndian) {
		var err error
		if in, err = FromBytes[T](q.data); err != nil {
			return nil, err
		}
	}
	if q.kind == wAcc || q.kind == wFetchOp {
		if err := accValid(w.kind, AccumulateOp(q.op)); err != nil {
			return nil, fmt.Errorf("mpi: %s: %w", op, err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	dst := w.local[q.offset : q.offset+q.count]
	ok := []byte{rwOK}
	switch q.kind {
	case wPut:
		if littleEndian {
			copy(AsBytes(dst), q.data)
		} else {
			copy(dst, in)
		}
	case wGet:
		return append(append(make([]byte, 0, 1+len(dst)*size), rwOK), AsBytes(dst)...), nil
	case wAcc:
		accumulate(w.kind, AccumulateOp(q.op), dst, in)
	case wFetchOp:
		old := append(ok, AsBytes(dst)...)
		accumulate(w.kind, AccumulateOp(q.op), dst, in)
		return old, nil
	case wCAS:
		old := append(ok, AsBytes(dst)...)
		if dst[0] == in[0] {
			dst[0] = in[1]
		}
		return old, nil
	}
	return ok, nil
}

// grant gives the lock to the waiters at the head of the queue that it can
// go to now.
func (s *winServer[T]) grant(ctx context.Context) {
	for len(s.waiting) > 0 {
		wt := s.waiting[0]
		if s.exclusive >= 0 || (wt.exclusive && len(s.shared) > 0) {
			return
		}
		s.waiting = s.waiting[1:]
		if wt.exclusive {
			s.exclusive = wt.src
		} else {
			s.shared[wt.src] = true
		}
		s.watch(wt.src)
		s.reply(ctx, wt.src, wt.tag, rwOK, nil)
	}
}

// release drops src's hold on the lock, and reports whether it had one.
func (s *winServer[T]) release(src int) bool {
	switch {
	case s.exclusive == src:
		s.exclusive = -1
	case s.shared[src]:
		delete(s.shared, src)
	default:
		return false
	}
	if r := s.watches[src]; r != nil {
		delete(s.watches, src)
		r.Cancel()
	}
	return true
}

// watch posts a receive from holder src that no one sends to: it fails
// with ErrPeerLost when src is lost, and then s learns of it.
func (s *winServer[T]) watch(src int) {
	if s.watches[src] != nil || src == s.c.Rank() {
		return
	}
	r := s.c.Irecv(src, winWatchTag)
	s.watches[src] = r
	go func() {
		<-r.Done()
		if _, err := r.Wait(context.Background()); errors.Is(err, ErrPeerLost) {
			select {
			case s.lost <- src:
			case <-s.done:
			}
		}
	}()
}

// holderLost releases the lock that the lost rank src held, and fails
// every Lock waiting: their holder is gone, and what it guarded may be
// half-done.
func (s *winServer[T]) holderLost(src int) {
	if s.watches[src] == nil {
		return // it had unlocked before
	}
	s.release(src)
	ctx := blocked.Quiet(context.Background())
	waiting := s.waiting
	s.waiting = nil
	s.nwaiting.Store(0)
	lost := binary.AppendUvarint(nil, uint64(src))
	for _, wt := range waiting {
		if wt.src != src {
			s.reply(ctx, wt.src, wt.tag, rwLost, lost)
		}
	}
}

// reply sends a reply. A rank that left cannot take it: the error is
// dropped.
func (s *winServer[T]) reply(ctx context.Context, dst, tag int, status byte, data []byte) {
	msg := make([]byte, 0, 1+len(data))
	msg = append(append(msg, status), data...)
	_ = s.c.Send(ctx, dst, tag, msg)
}

// accValid reports whether op applies to elements of kind k.
func accValid(k reflect.Kind, op AccumulateOp) error {
	cplx := k == reflect.Complex64 || k == reflect.Complex128
	flt := k == reflect.Float32 || k == reflect.Float64
	switch op {
	case AccSum, AccProd, AccReplace:
		return nil
	case AccMin, AccMax:
		if cplx {
			return fmt.Errorf("%v does not apply to %v elements (they have no order)", op, k)
		}
		return nil
	case AccBand, AccBor, AccBxor:
		if cplx || flt {
			return fmt.Errorf("%v applies to integers only, not to %v elements", op, k)
		}
		return nil
	}
	return fmt.Errorf("unknown accumulate operation %v", op)
}

// accumulate sets dst[i] = dst[i] (op) in[i]; op is valid for k.
func accumulate[T Number](k reflect.Kind, op AccumulateOp, dst, in []T) {
	switch op {
	case AccSum:
		for i := range dst {
			dst[i] += in[i]
		}
		return
	case AccProd:
		for i := range dst {
			dst[i] *= in[i]
		}
		return
	case AccReplace:
		copy(dst, in)
		return
	}
	switch k {
	case reflect.Int:
		accInt(op, as[int](dst), as[int](in))
	case reflect.Int8:
		accInt(op, as[int8](dst), as[int8](in))
	case reflect.Int16:
		accInt(op, as[int16](dst), as[int16](in))
	case reflect.Int32:
		accInt(op, as[int32](dst), as[int32](in))
	case reflect.Int64:
		accInt(op, as[int64](dst), as[int64](in))
	case reflect.Uint:
		accInt(op, as[uint](dst), as[uint](in))
	case reflect.Uint8:
		accInt(op, as[uint8](dst), as[uint8](in))
	case reflect.Uint16:
		accInt(op, as[uint16](dst), as[uint16](in))
	case reflect.Uint32:
		accInt(op, as[uint32](dst), as[uint32](in))
	case reflect.Uint64:
		accInt(op, as[uint64](dst), as[uint64](in))
	case reflect.Uintptr:
		accInt(op, as[uintptr](dst), as[uintptr](in))
	case reflect.Float32:
		accOrdered(op, as[float32](dst), as[float32](in))
	case reflect.Float64:
		accOrdered(op, as[float64](dst), as[float64](in))
	}
}

// as views s as a slice of E, a type of the same size and layout.
func as[E any, T Number](s []T) []E {
	return unsafe.Slice((*E)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

type winInteger interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

type winOrdered interface {
	winInteger | ~float32 | ~float64
}

func accOrdered[E winOrdered](op AccumulateOp, dst, in []E) {
	for i := range dst {
		switch op {
		case AccMin:
			dst[i] = min(dst[i], in[i])
		case AccMax:
			dst[i] = max(dst[i], in[i])
		}
	}
}

func accInt[E winInteger](op AccumulateOp, dst, in []E) {
	switch op {
	case AccMin, AccMax:
		accOrdered(op, dst, in)
		return
	}
	for i := range dst {
		switch op {
		case AccBand:
			dst[i] &= in[i]
		case AccBor:
			dst[i] |= in[i]
		case AccBxor:
			dst[i] ^= in[i]
		}
	}
}
