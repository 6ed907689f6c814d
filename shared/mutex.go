package shared

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/gorun-hpc/gorun/mpi"
)

// A Mutex is a lock shared by the ranks of a communicator:
// multiprocessing's Lock. At most one goroutine of one rank holds it at a
// time; ranks waiting get it in the order they asked. It is the exclusive
// lock of a window on rank 0 (mpi.Win.Lock), with a local lock in front so
// that the goroutines of one rank take turns too.
//
// A rank that holds it and is lost releases it: the ranks waiting get an
// error wrapping mpi.ErrPeerLost naming the lost rank (what the lock
// guarded may be half-updated), and the lock is free again for later
// Locks.
type Mutex struct {
	w     *mpi.Win[byte]
	local chan struct{} // holds a token while a goroutine of this rank holds or takes the lock
	held  atomic.Bool   // this rank holds the lock
}

// NewMutex makes a Mutex on c, unlocked. It is collective.
func NewMutex(ctx context.Context, c *mpi.Comm) (*Mutex, error) {
	if c == nil {
		return nil, errors.New("shared: NewMutex: nil communicator")
	}
	w, err := mpi.NewWin[byte](ctx, c, 0)
	if err != nil {
		return nil, fmt.Errorf("shared: NewMutex: %w", err)
	}
	return &Mutex{w: w, local: make(chan struct{}, 1)}, nil
}

// Lock blocks until this goroutine holds the lock, or ctx ends (then it
// returns ctx's error, wrapped, and holds nothing).
func (m *Mutex) Lock(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("shared: Mutex.Lock: %w", mpi.ErrNilContext)
	}
	select {
	case m.local <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("shared: Mutex.Lock: %w", ctx.Err())
	}
	if err := m.w.Lock(ctx, 0, true); err != nil {
		<-m.local
		return fmt.Errorf("shared: Mutex.Lock: %w", err)
	}
	m.held.Store(true)
	return nil
}

// Unlock releases the lock, which this rank must hold (from any of its
// goroutines); Unlock of a Mutex this rank does not hold is an error.
func (m *Mutex) Unlock(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("shared: Mutex.Unlock: %w", mpi.ErrNilContext)
	}
	if !m.held.CompareAndSwap(true, false) {
		return errors.New("shared: Mutex.Unlock: this rank does not hold the lock (Unlock without Lock)")
	}
	err := m.w.Unlock(ctx, 0)
	<-m.local
	if err != nil {
		return fmt.Errorf("shared: Mutex.Unlock: %w", err)
	}
	return nil
}

// Free releases the Mutex. It is collective: every rank calls it once no
// rank uses the Mutex any more.
func (m *Mutex) Free(ctx context.Context) error {
	if err := m.w.Free(ctx); err != nil {
		return fmt.Errorf("shared: Mutex.Free: %w", err)
	}
	return nil
}
