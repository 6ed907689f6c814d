package collectives

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// Non-blocking collectives (Ibarrier, Ibcast, Iallreduce, Ireduce,
// Iallgather) start a collective and return at once; the call goes on in
// the background while the rank computes, sends, receives or calls
// blocking collectives on the same communicator, and its Request gives the
// result.
//
// Each rank must start the non-blocking collectives of a communicator in
// the same order, as MPI requires: they are matched in the order started,
// never with a blocking one (a rank that calls Bcast where the others call
// Ibcast waits for them until its ctx ends). Those of one communicator run
// one after the other on each rank, in the order started, apart from the
// blocking calls: their messages carry tags of their own. Different kinds
// at one point (one rank's Ibcast, another's Iallreduce) fail on every
// rank with ErrMismatch, as blocking ones do.

// A Request is a non-blocking collective in flight. Wait, Test and Done may
// be called from any goroutine, any number of times.
type Request[T any] struct {
	done chan struct{}
	out  T
	err  error
}

// Wait returns the collective's result once it has one, or ctx's error if
// ctx ends first (the collective goes on: Wait again for it).
func (r *Request[T]) Wait(ctx context.Context) (T, error) {
	var zero T
	if ctx == nil {
		return zero, fmt.Errorf("collectives: wait: %w", mpi.ErrNilContext)
	}
	select {
	case <-r.done:
		return r.out, r.err
	default:
	}
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("collectives: wait: %w", ctx.Err())
	}
}

// Test reports whether the collective has finished and, if so, its result,
// without waiting.
func (r *Request[T]) Test() (T, bool, error) {
	select {
	case <-r.done:
		return r.out, true, r.err
	default:
		var zero T
		return zero, false, nil
	}
}

// Done is closed once the collective has finished: for a select beside
// other channels.
func (r *Request[T]) Done() <-chan struct{} { return r.done }

// Ibarrier starts a Barrier: its Request finishes once every rank of c has
// started it.
func Ibarrier(c *mpi.Comm) *Request[struct{}] {
	return startNB(c, kBarrier, noElem, 0, 0, barrier)
}

// Ibcast starts a Bcast of root's data to every rank of c; the Request's
// result is that data on every rank.
func Ibcast[T any](c *mpi.Comm, root int, data []T) *Request[[]T] {
	return startNB(c, kBcast, infoOf[T](), root, 0, func(x *call) ([]T, error) { return bcast(x, root, data) })
}

// Iallreduce starts an Allreduce of data with op; the Request's result is
// the combined data on every rank. data must not change until the Request
// has finished. It panics if op is nil, as Allreduce does.
func Iallreduce[T mpi.Number](c *mpi.Comm, data []T, op Op[T]) *Request[[]T] {
	return startReduce(c, kAllreduce, 0, data, op)
}

// Ireduce starts a Reduce of data with op to root; the Request's result is
// the combined data on root, nil elsewhere. data must not change until the
// Request has finished. It panics if op is nil, as Reduce does.
func Ireduce[T mpi.Number](c *mpi.Comm, root int, data []T, op Op[T]) *Request[[]T] {
	return startReduce(c, kReduce, root, data, op)
}

func startReduce[T mpi.Number](c *mpi.Comm, k kind, root int, data []T, op Op[T]) *Request[[]T] {
	if op == nil {
		panic(fmt.Sprintf("collectives: I%s: nil Op", k))
	}
	return startNB(c, k, infoOf[T](), root, len(data), func(x *call) ([]T, error) { return reduceBody(x, root, data, op, nil) })
}

// Iallgather starts an Allgather: the Request's result is every rank's
// data, in rank order, on every rank. data must not change until the
// Request has finished.
func Iallgather[T any](c *mpi.Comm, data []T) *Request[[]T] {
	return startNB(c, kAllgather, infoOf[T](), 0, 0, func(x *call) ([]T, error) { return allgather(x, data) })
}

// startNB begins non-blocking call k on c in the caller's goroutine (so
// that calls are numbered in the order the program starts them), and
// queues body to run after the calls started before it.
func startNB[R any](c *mpi.Comm, k kind, elem *elemInfo, root, length int, body func(*call) (R, error)) *Request[R] {
	r := &Request[R]{done: make(chan struct{})}
	x, err := beginCall(context.Background(), c, k, elem, root, length, true)
	if err != nil {
		r.err = err
		close(r.done)
		return r
	}
	x.sh.runNB(func() {
		defer close(r.done)
		r.out, r.err = runNB(x, body)
	})
	return r
}

// runNB runs a non-blocking call's body and ends the call. An Op's panic
// on this rank is its error (wrapping ErrOpPanicked), not a panic of the
// goroutine that runs the calls.
func runNB[R any](x *call, body func(*call) (R, error)) (out R, err error) {
	ended := false // done ends the call first thing, even when it panics
	defer func() {
		if v := recover(); v != nil {
			if !ended {
				x.end()
			}
			var zero R
			out, err = zero, fmt.Errorf("collectives: I%s: %v: %w", x.k, v, ErrOpPanicked)
		}
	}()
	out, err = body(x)
	var got []R
	if err == nil {
		got = []R{out}
	}
	ended = true
	got, err = done(x, got, err)
	if err != nil {
		var zero R
		return zero, err
	}
	return got[0], nil
}

// runNB queues f after the non-blocking calls started before it, and runs
// the queue in a goroutine of its own if none does.
func (sh *shadow) runNB(f func()) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.nbq = append(sh.nbq, f)
	if sh.nbRunning {
		return
	}
	sh.nbRunning = true
	go func() {
		for {
			sh.mu.Lock()
			if len(sh.nbq) == 0 {
				sh.nbRunning = false
				sh.mu.Unlock()
				return
			}
			f := sh.nbq[0]
			sh.nbq[0] = nil
			sh.nbq = sh.nbq[1:]
			sh.mu.Unlock()
			f()
		}
	}()
}
