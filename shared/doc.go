// Package shared is Python's multiprocessing.Value, Array and Lock across
// the ranks of a gorun job: numbers that any rank reads and updates, and a
// lock that any rank takes, built on mpi's one-sided windows (mpi.Win).
//
//	multiprocessing                    gorun
//	v = Value('q', 0)                  v, err := shared.NewValue[int64](ctx, world)
//	with v.get_lock(): v.value += 1    old, err := v.Add(ctx, 1)   // atomic
//	a = Array('d', 100)                a, err := shared.NewArray[float64](ctx, world, 100)
//	a[i] = x; x = a[i]                 err = a.Set(ctx, i, x); x, err = a.At(ctx, i)
//	lock = Lock(); with lock: ...      m, err := shared.NewMutex(ctx, world); m.Lock(ctx); ...; m.Unlock(ctx)
//
// Every constructor is collective: every rank of the communicator calls
// it, in the same order as its other collective calls there. The data
// lives on the ranks (a Value on rank 0, an Array in blocks over the
// ranks), each rank serving its part in the background: a call completes
// while the rank that keeps the data computes, without its taking part.
// Each call is one round trip to the rank that keeps the element, and each
// element's update is atomic. Free, collective too, releases one once no
// rank uses it any more.
//
// A rank that holds a Mutex and is lost (its world closed or cut off)
// releases it: the ranks waiting for it get an error wrapping
// mpi.ErrPeerLost naming it, not a hang.
//
// This package uses only mpi's public API.
package shared
