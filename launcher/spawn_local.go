package launcher

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/gorun-hpc/gorun/internal/blocked"
)

// localSpawner runs the ranks placed on this machine: the agent code every
// remote host runs (hostRanks), here inside gorun, with output going
// straight to gorun's.
type localSpawner struct {
	host string // this machine's name, for messages

	mu     sync.Mutex
	ranks  *hostRanks
	job    string
	killed *bool // a stop before start: SIGKILL (true) or SIGTERM
}

var _ spawner = (*localSpawner)(nil)

func newLocalSpawner() *localSpawner {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &localSpawner{host: host}
}

func (s *localSpawner) start(ctx context.Context, spec *spawnSpec, exits chan<- rankExit) {
	left := len(spec.Procs)
	var mu sync.Mutex
	var hr *hostRanks
	hr = newHostRanks(s.host,
		func(rank int, stderr bool, r io.ReadCloser) { spec.Out.forward(rank, r, stderr) },
		func(x rankExit) {
			mu.Lock()
			left--
			last := left == 0
			mu.Unlock()
			if last {
				// The job is over on this machine: end whatever its ranks
				// left, wherever it went.
				hr.finish(spec.Job.ID)
			}
			exits <- x
		})
	hr.onJoined = spec.Joined
	hr.early = spec.keeper
	s.mu.Lock()
	s.ranks, s.job = hr, spec.Job.ID
	if s.killed != nil {
		hr.stop(*s.killed, spec.Job.ID) // stop came before start
	}
	s.mu.Unlock()
	j := spec.hostJob(s.host)
	hr.start(ctx, &j, spec.Stdin)
}

func (s *localSpawner) states() map[int]*blocked.State {
	s.mu.Lock()
	hr := s.ranks
	s.mu.Unlock()
	if hr == nil {
		return nil
	}
	return hr.states()
}

func (s *localSpawner) clock() int64 { return 0 }

func (s *localSpawner) dumpTraces() {
	s.mu.Lock()
	hr := s.ranks
	s.mu.Unlock()
	if hr != nil {
		hr.dumpTraces()
	}
}

func (s *localSpawner) stop(kill bool) {
	s.mu.Lock()
	hr, job := s.ranks, s.job
	if hr == nil && (s.killed == nil || kill) {
		s.killed = &kill
	}
	s.mu.Unlock()
	if hr != nil {
		hr.stop(kill, job)
	}
}
