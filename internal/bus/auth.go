package bus

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/subject"
)

// JobKeys makes a job's identities on the servers gorun embeds: one nkey
// per rank. users are the public keys, which go into every server's
// Spec (and so to every host of the job); seeds are the secrets, each
// of which reaches its rank only, through its environment
// (GORUN_NATS_CREDS).
func JobKeys(job string, size int) (users, seeds []string, err error) {
	if err := subject.CheckJob(job); err != nil {
		return nil, nil, err
	}
	if size < 1 {
		return nil, nil, fmt.Errorf("a job of %d ranks", size)
	}
	users = make([]string, size)
	seeds = make([]string, size)
	for r := range size {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, nil, fmt.Errorf("rank %d's key: %w", r, err)
		}
		if users[r], err = kp.PublicKey(); err != nil {
			return nil, nil, err
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, nil, err
		}
		seeds[r] = string(seed)
	}
	return users, seeds, nil
}

// jobAuthorization sets who may connect to a server of the job, and what
// each may do: the same on every server of its cluster, since it is made
// from the job's spec only. One nkey user per rank (spec.Users), whose
// permissions (subject.Permissions) let it publish only subjects that name
// it as the sender and subscribe only to its own inbox and replies and the
// job's shared subjects. Nothing else may connect.
func jobAuthorization(spec *Spec, opts *server.Options) error {
	if err := subject.CheckJob(spec.JobID); err != nil {
		return err
	}
	if len(spec.Users) != spec.Size || spec.Size < 1 {
		return fmt.Errorf("%d rank keys for a job of %d ranks", len(spec.Users), spec.Size)
	}
	opts.Nkeys = make([]*server.NkeyUser, len(spec.Users))
	for r, pub := range spec.Users {
		if !nkeys.IsValidPublicUserKey(pub) {
			return fmt.Errorf("rank %d's key %q is not an nkey user's public key", r, pub)
		}
		opts.Nkeys[r] = &server.NkeyUser{Nkey: pub, Permissions: rankPermissions(spec.JobID, r)}
	}
	return nil
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
