package launcher

import (
	"context"
	"fmt"
	"time"

	"github.com/gorun-hpc/gorun/internal/bus"
)

// openBus opens the job's bus: the embedded server, or --nats's.
func (r *runner) openBus(j *job) error {
	var err error
	if r.cfg.NATSURL == "" {
		err = r.embeddedBus(j)
	} else {
		err = r.externalBus(j)
	}
	if err == nil {
		r.logf("job %s", j.info.ID)
	}
	return err
}

// embeddedBus starts a server here, and (with remote hosts) one on every
// other host of the job, in one cluster whose seed is this one.
func (r *runner) embeddedBus(j *job) error {
	cfg := &r.cfg
	users, seeds, err := bus.JobKeys(j.info.ID, cfg.N)
	if err != nil {
		return err
	}
	spec := &bus.Spec{Name: "gorun", Host: cfg.NATSHost, JobID: j.info.ID, Size: cfg.N, Users: users, Verbose: cfg.Verbose, Logf: r.out.printf}
	var remotes []Host
	for _, h := range cfg.Hosts {
		if !h.IsLocal() {
			remotes = append(remotes, h)
		}
	}
	if len(remotes) > 0 {
		c, cs, err := clusterFor(j.ctx, cfg, j.info.ID, users, remotes)
		if err != nil {
			return err
		}
		spec, j.info.Cluster = cs, c
	}
	srv, err := bus.Start(spec)
	if err != nil {
		return err
	}
	j.onClose(srv.Shutdown)
	j.info.NATSURL, j.info.Server = srv.URL(), srv
	j.info.Creds = make(map[int]string, len(seeds))
	for r, seed := range seeds {
		j.info.Creds[r] = seed
	}
	r.logf("embedded NATS server listening on %s:%d", cfg.NATSHost, srv.Port())
	if c := j.info.Cluster; c != nil {
		c.setSeed(spec.Cluster.Advertise, srv.RoutePort())
		r.logf("the job's cluster: routes (TLS) to this host at %s", c.seed)
	}
	return nil
}

// externalBus checks --nats's server and mints or shares the ranks'
// credentials on it.
func (r *runner) externalBus(j *job) error {
	cfg := &r.cfg
	ext, err := bus.NewExternal(bus.ExternalConfig{
		URL: cfg.NATSURL, CA: cfg.NATSCA, Cert: cfg.NATSCert, Key: cfg.NATSKey,
		Creds: cfg.NATSCreds, AccountKey: cfg.NATSAccountKey, Account: cfg.NATSAccount,
	})
	if err != nil {
		return err
	}
	if bus.URLToken(cfg.NATSURL) != "" {
		r.out.printf("warning: --nats: a token in the URL shows on gorun's command line to every user of this machine; set GORUN_NATS_TOKEN instead (ranks get it that way, never in their URL)")
	}
	expires := time.Now().Add(bus.MintLifetime)
	if cfg.Timeout > 0 {
		expires = time.Now().Add(cfg.Timeout + 10*time.Minute)
	}
	auth, err := ext.CheckOptions(j.info.ID, expires)
	if err != nil {
		return fmt.Errorf("--nats %s: %w", redactURL(cfg.NATSURL), err)
	}
	url := bus.StripUserInfo(cfg.NATSURL)
	cctx, ccancel := context.WithTimeout(j.ctx, cfg.ConnectTimeout)
	err = bus.CheckExternal(cctx, url, cfg.ConnectTimeout, auth)
	ccancel()
	if err != nil {
		return fmt.Errorf("--nats %s: cannot connect: %w", redactURL(cfg.NATSURL), err)
	}
	if j.info.Creds, err = ext.RankCreds(j.info.ID, cfg.N, expires); err != nil {
		return fmt.Errorf("--nats-account-key: %w", err)
	}
	j.info.NATSURL, j.info.TLS = url, ext.TLS
	if ext.Isolated() {
		r.logf("each rank connects as a user of its own, minted for this job (valid until %s)", expires.Format(time.RFC3339))
	} else {
		j.info.Token = ext.Token
		r.out.printf("warning: --nats: the job is not isolated from other users of this server: every rank connects with the same credentials; give --nats-account-key to mint users for each job and rank")
	}
	r.logf("using the NATS server at %s", redactURL(cfg.NATSURL))
	return nil
}

// deathNotice bounds how long gorun tries to tell the ranks that one died.
const deathNotice = 5 * time.Second

// announceDeath tells every rank of j that rank died and the job goes on
// (--on-failure continue); gorun says so if it cannot.
func (r *runner) announceDeath(j *job, rank int) {
	ctx, cancel := context.WithTimeout(j.ctx, deathNotice)
	defer cancel()
	auth := bus.RankAuth{Creds: j.info.Creds[rank], Token: j.info.Token, TLS: j.info.TLS}
	if err := bus.AnnounceDeath(ctx, j.info.NATSURL, auth, j.info.ID, rank); err != nil {
		r.out.printf("warning: could not tell the other ranks that rank %d died: %v (what waits for it may hang)", rank, err)
	}
}
