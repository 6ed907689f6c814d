package launcher

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/subject"
)

// jobAuthorization is the authorization of one job on the NATS servers
// gorun embeds: one nkey user per rank, whose permissions
// (subject.Permissions) let it publish only subjects that name it as the
// sender and subscribe only to its own inbox and replies and the job's
// shared subjects. It returns the server side (apply it to every server
// of the job, each of a cluster alike: server.Options.Nkeys) and each
// rank's seed, which reaches the rank only through its environment
// (GORUN_NATS_CREDS). Nothing else may connect.
func jobAuthorization(job string, size int) (users []*server.NkeyUser, seeds []string, err error) {
	if err := subject.CheckJob(job); err != nil {
		return nil, nil, err
	}
	users = make([]*server.NkeyUser, size)
	seeds = make([]string, size)
	for r := range size {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, nil, fmt.Errorf("rank %d's key: %w", r, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, nil, err
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, nil, err
		}
		users[r] = &server.NkeyUser{Nkey: pub, Permissions: rankPermissions(job, r)}
		seeds[r] = string(seed)
	}
	return users, seeds, nil
}

// rankPermissions is what rank may do on a server: subject.Permissions, as
// nats-server takes it.
func rankPermissions(job string, rank int) *server.Permissions {
	pub, sub := subject.Permissions(job, rank)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}
