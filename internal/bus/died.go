package bus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gorun-hpc/gorun/internal/natsauth"
	"github.com/gorun-hpc/gorun/internal/subject"
)

// RankAuth is how a rank authenticates to the job's server: its own
// credentials (GORUN_NATS_CREDS: an nkey seed or a .creds file's content),
// a shared token, and a --nats server's TLS files.
type RankAuth struct {
	Creds, Token string
	TLS          TLSFiles
}

// AnnounceDeath tells every rank of job that rank died and the job goes
// on without it (gorun --on-failure continue): it connects to urls as
// that rank, with auth, so that the server vouches for whom the news is
// about, and publishes on subject.Died, to which every rank subscribes.
func AnnounceDeath(ctx context.Context, urls string, auth RankAuth, job string, rank int) error {
	opts := []nats.Option{nats.Name("gorun (rank's death)"), nats.NoReconnect()}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(dl)))
	}
	if auth.Creds != "" {
		o, err := natsauth.Option(auth.Creds)
		if err != nil {
			return err
		}
		opts = append(opts, o)
	}
	if auth.Token != "" {
		opts = append(opts, nats.Token(auth.Token))
	}
	opts = append(opts, (&External{TLS: auth.TLS}).tlsOptions()...)
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := nc.Publish(subject.Died(job, rank), nil); err != nil {
		return err
	}
	return nc.FlushWithContext(ctx)
}
