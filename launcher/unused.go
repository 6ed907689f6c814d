package launcher

import (
	"context"
	"net"
	"sync"
	"time"
)

// unusedTimeout bounds the look-up of the hosts no rank is placed on.
const unusedTimeout = 2 * time.Second

// warnUnused warns about each host of the plan that no rank is placed on
// and whose name does not resolve (after ~/.ssh/config): a misspelt host
// in a hostfile would otherwise go unnoticed until a larger job lands on
// it. Only with the ssh launcher: Slurm names its own nodes.
func (r *runner) warnUnused(ctx context.Context, plan Plan) {
	if r.cfg.Launcher == LauncherSlurm {
		return
	}
	used := make([]bool, len(plan.Hosts))
	for _, p := range plan.Procs {
		used[p.Host] = true
	}
	ctx, cancel := context.WithTimeout(ctx, unusedTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, h := range plan.Hosts {
		if used[i] || h.IsLocal() || net.ParseIP(h.Name) != nil {
			continue
		}
		wg.Go(func() {
			name := sshHostName(ctx, &r.cfg.SSH, h)
			if net.ParseIP(name) != nil {
				return
			}
			if _, err := net.DefaultResolver.LookupHost(ctx, name); err != nil && ctx.Err() == nil {
				r.out.printf("warning: %s: host %s: no rank placed on it, and its name does not resolve: %v", h.Source, h, err)
			}
		})
	}
	wg.Wait()
}
