package launcher

import (
	"os"
	"sync"
	"time"
)

// phases follows a job's start after its agents are up: its cluster of
// servers forming (one report per server, jobCluster.routed) and its
// ranks joining (one report per host, when every rank of it returned from
// Init). With -v it says when each ended, so that on a wide job a slow
// phase names itself; a cluster that does not form ends the job, naming
// the hosts whose routes did not come up.
type phases struct {
	r *runner
	j *job
	c *jobCluster // nil: the job has no cluster

	mu      sync.Mutex
	hosts   int       // hosts with ranks
	joined  int       // of them, those whose ranks all returned from Init
	started time.Time // the ranks were started
	overdue *time.Timer
}

func newPhases(r *runner, j *job, c *jobCluster) *phases {
	return &phases{r: r, j: j, c: c}
}

// start marks the ranks' start, and watches gorun's own server join the
// mesh. Past ClusterFormTimeout (and a little more for the reports to
// come), servers that never reported are named.
func (p *phases) start() {
	p.mu.Lock()
	p.started = time.Now()
	p.mu.Unlock()
	if p.c == nil {
		return
	}
	t := time.AfterFunc(ClusterFormTimeout+5*time.Second, func() {
		if err := p.c.overdue(); err != nil {
			p.j.cancel(err)
		}
	})
	p.j.onClose(func() { t.Stop() })
	go func() {
		srv := p.j.info.Server
		lacks := awaitRoutes(srv, p.c.peersOf(ownServer), p.c.all, p.j.ctx.Done(), nil)
		if p.j.ctx.Err() != nil {
			return
		}
		if len(lacks) == 0 {
			// Until the ranks have ended, a route that closes ends the
			// job (see the agent's startRanks). The watch has the routes
			// before this report can let the ranks start.
			host, _ := os.Hostname()
			srv.WatchRoutes(host, p.j.ranksEnded, func(err error) { p.j.fault(jobFault(err.Error())) })
		}
		p.routed(ownServer, lacks)
	}()
}

// routed takes a server's report on its routes.
func (p *phases) routed(server string, lacks []string) {
	if p.c == nil {
		return
	}
	took, ok, err := p.c.routed(server, lacks)
	switch {
	case err != nil:
		p.j.cancel(err)
	case ok:
		p.r.logf("cluster formed: %d servers, each with a route to every other, %v after the first host's server started", len(p.c.peersOf("")), took.Round(time.Millisecond))
	}
}

// hostJoined counts a host whose ranks all returned from Init.
func (p *phases) hostJoined() {
	p.mu.Lock()
	p.joined++
	all := p.joined == p.hosts
	since := time.Since(p.started)
	p.mu.Unlock()
	if all {
		p.r.logf("ranks joined: all %d ranks returned from Init, %v after they were started", p.r.cfg.N, since.Round(time.Millisecond))
	}
}
