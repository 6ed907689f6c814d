// Package pool is Python's multiprocessing Pool.map for SPMD programs: rank
// 0 holds a list of tasks, every rank (rank 0 included) runs a function on
// the tasks it is handed, and rank 0 gets the results, in input order (Map)
// or as they arrive (MapUnordered).
//
// # Usage
//
// A whole program, run with `gorun -n 4 ./main.go` (see package mpi for
// gorun init and Main):
//
//	mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
//		squares := mpi.Must(pool.Map(ctx, world, []int{1, 2, 3, 4}, square)) // square(ctx, x) (int, error)
//		if world.Rank() == 0 {
//			fmt.Println(squares) // [1 4 9 16]
//		}
//		return nil
//	})
//
// Every call has a runnable example (`go doc -all
// github.com/gorun-hpc/gorun/pool`). Every rank of a communicator calls Map
// with the same function; the inputs are read on rank 0 only:
//
//	world, err := mpi.Init(ctx)
//	...
//	var inputs []Params
//	if world.Rank() == 0 {
//		inputs = load()
//	}
//	results, err := pool.Map(ctx, world, inputs, simulate) // rank 0: len(inputs) results, in order; others: nil
//
// # Load balancing
//
// By default the hand-out is dynamic: rank 0 gives each rank a chunk of
// tasks, and another as soon as it sends back results, so fast ranks and
// cheap tasks do not wait for slow ones. Each rank other than 0 holds a
// second chunk in reserve (prefetch), so it never idles on a round trip to
// rank 0; rank 0 runs its own share in a goroutine of its own, next to the
// hand-out, with no round trip at all. Chunk(k) sets the chunk size; by
// default it is chosen from the task count (one task per chunk unless there
// are more than 64 per rank) and shrinks towards the end. Static() instead
// cuts the tasks up front into one contiguous block per rank (as
// collectives.Scatter does: lengths differ by at most one, lower ranks
// longer), which costs the least messages but lets the slowest rank set the
// pace: examples/balance measures both.
//
// # Data
//
// Tasks and results travel in the wire form of mpi.AppendValue: numbers and
// slices of numbers as raw little-endian bytes, strings as bytes, any other
// type with encoding/gob (so struct fields must be exported). On rank 0 its
// own tasks are never encoded.
//
// # Failure
//
// When fn returns an error, the call ends on every rank, promptly: the fn
// calls still running get their ctx canceled, and every rank returns a
// *TaskError naming the task's index and the rank that ran it. When a
// rank's ctx ends, or MapUnordered's each returns an error, or a peer is
// lost, that rank returns its own error and the others an error wrapping
// ErrStopped that says why. A call returns only once the fn calls it
// started on its rank have returned, so fn should honour its ctx. A panic
// in fn is a task's failure like an error (multiprocessing re-raises a
// worker's exception in the caller): the process that ran it lives on, and
// every rank's *TaskError says "panic:", the panic's value and its line.
//
// A rank other than 0 that is lost during a call (it died under gorun
// --on-failure continue, or closed its world) does not end it: the tasks
// it held go to the other ranks, each result still comes once, in order,
// and the others return as if nothing happened. A task that loses more
// ranks than Retries allows (2 by default) ends the call with a
// *TaskError naming it.
//
// # Statistics and trace
//
// gorun --stats counts Map, MapUnordered and Run as calls of their own, with
// the time the calling goroutine waited in them; gorun --trace shows each
// call as one slice per rank, with the tasks that rank ran; the hang report
// shows a rank blocked in one as Map(world). The messages and waits a call
// is made of are its own business, and appear in none of them.
//
// # Futures
//
// Run is mpi4py.futures' MPIPoolExecutor (and concurrent.futures'
// executors): a body on rank 0 submits tasks while others run, and takes
// each result as it comes, while every rank serves tasks with Map's
// hand-out and failure rules:
//
//	err := pool.Run(ctx, world, simulate, func(ctx context.Context, ex *pool.Executor[Params, Result]) error {
//		var fs []*pool.Future[Result]
//		for _, p := range start {
//			fs = append(fs, ex.Submit(p))
//		}
//		for f, err := range ex.AsCompleted(ctx, fs...) {
//			... // err: the task's; f.Wait(ctx) is its result; ex.Submit more
//		}
//		return nil
//	})
//
// Future.Cancel withdraws a task no rank has taken yet. Run returns once
// the body has returned and every task it submitted has finished.
//
// # Queue
//
// Queue is multiprocessing's Queue across ranks: any rank may Put to it and
// Get from it, from any number of goroutines; one rank (the owner) holds the
// items and serves the others, optionally bounded (MaxSize). Each
// producer's items come out in the order it put them, and every item once.
// Every rank calls Close when it will put no more; once all have and the
// queue is empty, Get returns ErrQueueClosed. With Joinable it is a
// JoinableQueue too (TaskDone, Join):
//
//	q, err := pool.NewQueue[Job](ctx, world) // every rank
//	...
//	q.Close()
//	for {
//		job, err := q.Get(ctx)
//		if err == pool.ErrQueueClosed {
//			break
//		}
//		...
//	}
//
// # Isolation
//
// Map's messages never match a receive of the program's: each communicator
// gets a shadow (a Dup, made on the first call), and each call on it has
// tags of its own. Every rank must make the same pool calls on a
// communicator in the same order, as with collectives, and one at a time
// (calls on different communicators may run at once). On a world of one,
// Map is a plain loop.
package pool
