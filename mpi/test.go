package mpi

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// Testing and waiting for sets of requests. A nil *Request is MPI's null
// request: every call here skips it. WaitAny, TestAny and WaitSome make the
// requests they return inactive, as MPI does: they skip them on later
// calls, so that a farm loop can pass the same slice every time, and they
// return index -1 once no request is left active. Wait, Test, WaitAll and
// TestAll still report an inactive request's result. None of these calls
// starts a goroutine per request: a waiter sleeps until some request of
// its rank finishes, then looks again.

// Test reports whether the request has completed, without blocking; when
// it has, it returns what Wait would. A nil request is complete, with a
// zero Status.
func (r *Request) Test() (Status, bool, error) {
	if r == nil {
		return Status{}, true, nil
	}
	select {
	case <-r.done:
		return r.status, true, r.err
	default:
		return Status{}, false, nil
	}
}

// TestAll reports whether every request has completed, without blocking;
// when all have, it returns the errors of those that failed, joined, as
// WaitAll does. nil entries are skipped.
func TestAll(reqs ...*Request) (bool, error) {
	var errs []error
	for _, r := range reqs {
		if r == nil {
			continue
		}
		select {
		case <-r.done:
			if r.err != nil {
				errs = append(errs, r.err)
			}
		default:
			return false, nil
		}
	}
	return true, errors.Join(errs...)
}

// TestAny returns, without blocking, the index and result of an active
// request that has completed, and makes it inactive. When none has
// completed it returns index -1 and false; when no request is active
// (all nil or already returned) it returns index -1 and true, as MPI does.
func TestAny(reqs ...*Request) (int, Status, bool, error) {
	i, active := claimDone(reqs)
	if i >= 0 {
		return i, reqs[i].status, true, reqs[i].err
	}
	return -1, Status{}, !active, nil
}

// claimDone returns the index of a completed active request, made
// inactive, or -1 and whether any request is still active.
func claimDone(reqs []*Request) (int, bool) {
	active := false
	for i, r := range reqs {
		if r == nil || r.inactive.Load() {
			continue
		}
		select {
		case <-r.done:
			if r.inactive.CompareAndSwap(false, true) {
				return i, true
			}
		default:
			active = true
		}
	}
	return -1, active
}

// WaitAny blocks until one of the active requests completes, makes it
// inactive and returns its index and result. nil entries are skipped, and
// so are requests that WaitAny, TestAny or WaitSome returned before (MPI
// makes a completed request inactive): call it again with the same slice
// for the next one. With no active request it returns -1 and a nil error
// at once. When ctx ends first it returns -1 and an error wrapping
// ctx.Err(). It takes no goroutine per request: each call costs a scan of
// reqs, and another each time a request of this rank finishes.
func WaitAny(ctx context.Context, reqs ...*Request) (int, Status, error) {
	if ctx == nil {
		return -1, Status{}, nilContext("wait any")
	}
	opWaitAny.Count(ctx)
	if c := firstComm(reqs); c != nil {
		defer c.span(ctx).end(c, "WaitAny", blocked.None, 0, 0)
	}
	entered := false
	for {
		wake := armWaiters(reqs)
		i, active := claimDone(reqs)
		if i >= 0 {
			return i, reqs[i].status, reqs[i].err
		}
		if !active {
			return -1, Status{}, nil
		}
		if !entered && blocked.IsQuiet(ctx) {
			entered = true
			blocked.Parking(ctx)
		} else if !entered {
			entered = true
			defer blocked.Enter(anyCall(reqs, "WaitAny")).Exit()
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return -1, Status{}, fmt.Errorf("mpi: wait any: %w", ctx.Err())
		}
	}
}

// WaitSome blocks until at least one of the active requests completes,
// makes every completed one inactive and returns their indices, in order,
// with the errors of those that failed, joined (each request's own result
// stays in Wait and Test). nil and inactive entries are skipped, as by
// WaitAny; with no active request it returns nil at once. When ctx ends
// first it returns an error wrapping ctx.Err().
func WaitSome(ctx context.Context, reqs ...*Request) ([]int, error) {
	if ctx == nil {
		return nil, nilContext("wait some")
	}
	if c := firstComm(reqs); c != nil {
		defer c.span(ctx).end(c, "WaitSome", blocked.None, 0, 0)
	}
	entered := false
	for {
		wake := armWaiters(reqs)
		var idx []int
		var errs []error
		active := false
		for i, r := range reqs {
			if r == nil || r.inactive.Load() {
				continue
			}
			select {
			case <-r.done:
				if r.inactive.CompareAndSwap(false, true) {
					idx = append(idx, i)
					if r.err != nil {
						errs = append(errs, r.err)
					}
				}
			default:
				active = true
			}
		}
		if len(idx) > 0 || !active {
			return idx, errors.Join(errs...)
		}
		if !entered && blocked.IsQuiet(ctx) {
			entered = true
			blocked.Parking(ctx)
		} else if !entered {
			entered = true
			defer blocked.Enter(anyCall(reqs, "WaitSome")).Exit()
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("mpi: wait some: %w", ctx.Err())
		}
	}
}

// firstComm is the communicator of the first request that has one.
func firstComm(reqs []*Request) *Comm {
	for _, r := range reqs {
		if r != nil && r.c != nil {
			return r.c
		}
	}
	return nil
}

// armWaiters returns a channel that is closed when a request of the
// engines of reqs finishes after this call. Requests of one rank share one
// engine; the rare set that spans several (worlds of goroutine ranks in a
// test) gets one forwarding goroutine per further engine, not per request.
func armWaiters(reqs []*Request) <-chan struct{} {
	var first *engine
	var chans []<-chan struct{}
	for _, r := range reqs {
		if r == nil || r.e == nil || r.e == first {
			continue
		}
		if first == nil {
			first = r.e
			chans = append(chans, r.e.waiter())
			continue
		}
		dup := false
		for _, s := range reqs {
			if s == r {
				break
			}
			if s != nil && s.e == r.e {
				dup = true
				break
			}
		}
		if !dup {
			chans = append(chans, r.e.waiter())
		}
	}
	switch len(chans) {
	case 0:
		ch := make(chan struct{})
		close(ch) // nothing can finish later: look again at once
		return ch
	case 1:
		return chans[0]
	}
	woken := make(chan struct{})
	var once sync.Once
	for _, ch := range chans {
		go func() {
			select {
			case <-ch:
				once.Do(func() { close(woken) })
			case <-woken:
			}
		}()
	}
	return woken
}

// waiter returns a channel that is closed when the next request finishes.
func (e *engine) waiter() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.anyDone == nil {
		e.anyDone = make(chan struct{})
	}
	return e.anyDone
}

// wakeWaiters wakes the WaitAny and WaitSome calls waiting for a request
// to finish. Called with e.mu held, from finish.
func (e *engine) wakeWaiters() {
	if e.anyDone != nil {
		close(e.anyDone)
		e.anyDone = nil
	}
}

// anyCall describes a wait for any of reqs, in op, for the hang report.
func anyCall(reqs []*Request, op string) blocked.Call {
	var first *Request
	for _, r := range reqs {
		if r != nil && r.c != nil && !r.inactive.Load() {
			first = r
			break
		}
	}
	if first == nil {
		return blocked.Call{Op: op, Comm: "?", Peer: blocked.None, PeerWorld: blocked.None, Tag: blocked.None, Root: blocked.None, Bytes: -1}
	}
	c := first.blockedCall(op)
	for _, r := range reqs {
		if r != nil && r.c != nil && (r.peer != first.peer || r.send != first.send || r.c != first.c) {
			c.Peer, c.PeerWorld, c.Tag, c.Bytes = AnySource, AnySource, blocked.None, -1
			break
		}
	}
	return c
}
