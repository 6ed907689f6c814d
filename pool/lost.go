package pool

import (
	"errors"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

// A rank lost during a call: rank 0 watches every other rank, and the
// chunks a lost one held go to the others (see lose).

// watchRanks posts, for every rank but 0, a receive that no message
// matches (on the down tag, which only rank 0 sends on): it ends when that
// rank is lost, and its end comes on m.lostC.
func (m *master[In, Out]) watchRanks() {
	m.lostC = make(chan int, m.n)
	m.watch = make([]*mpi.Request, m.n)
	for w := 1; w < m.n; w++ {
		r := m.c.Irecv(w, m.down)
		m.watch[w] = r
		go func() {
			<-r.Done()
			m.lostC <- w
		}()
	}
}

// lost takes the end of rank w's watch: when w is lost, its chunks go to
// the others.
func (m *master[In, Out]) lost(w int) error {
	_, err := m.watch[w].Wait(m.qctx)
	if !errors.Is(err, mpi.ErrPeerLost) {
		return fmt.Errorf("pool: watching rank %d: %v", w, err)
	}
	return m.lose(w)
}

// lose hands what rank w, lost, held to the other ranks: each task of its
// chunks is run again. The task it was running (a worker runs its chunks
// in order, the first in hand) is charged with the loss, once alone in its
// chunk: a task charged more than cfg.retries times (one that kills the
// ranks that run it) fails the call.
func (m *master[In, Out]) lose(w int) error {
	if m.dead[w] {
		return nil
	}
	m.dead[w], m.stopped[w] = true, true
	if m.tries == nil {
		m.tries = make(map[int]int)
	}
	for j, s := range m.queued[w] {
		switch {
		case j > 0:
			m.retry = append(m.retry, s) // held in reserve: never started
		case s.count == 1:
			// The task it was running, alone: charged with the loss.
			m.tries[s.start]++
			if k := m.tries[s.start]; k > m.cfg.retries {
				return &TaskError{Index: s.start, Rank: w, Err: fmt.Errorf("rank %d was lost while it ran the task, the %s rank lost so (Retries(%d))", w, ordinal(k), m.cfg.retries)}
			}
			m.retry = append(m.retry, s)
		default:
			// One task of the chunk it was running killed it, maybe: they
			// go again one by one, so that a second loss names that one.
			for i := s.start; i < s.start+s.count; i++ {
				m.retry = append(m.retry, span{i, 1})
			}
		}
	}
	m.queued[w] = nil
	keep := m.sends[:0]
	for _, s := range m.sends {
		if s.to == w {
			s.r.Cancel()
		} else {
			keep = append(keep, s)
		}
	}
	clear(m.sends[len(keep):])
	m.sends = keep
	return m.refillAll()
}

// ordinal is 1st, 2nd, 3rd, 4th...
func ordinal(k int) string {
	switch {
	case k%100/10 == 1:
		return fmt.Sprintf("%dth", k)
	case k%10 == 1:
		return fmt.Sprintf("%dst", k)
	case k%10 == 2:
		return fmt.Sprintf("%dnd", k)
	case k%10 == 3:
		return fmt.Sprintf("%drd", k)
	}
	return fmt.Sprintf("%dth", k)
}
