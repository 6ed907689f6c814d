// Package natsauth turns a rank's NATS credentials, as gorun hands them
// out (GORUN_NATS_CREDS), into a nats.go option: for package mpi, whose
// ranks connect with them, and for the launcher, which connects as a rank
// to announce its death.
package natsauth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Option is the nats.go option that authenticates with creds: a user JWT
// and its seed (a .creds file's content, as minted for a server of the
// user's), or an nkey seed alone (as the embedded servers admit).
func Option(creds string) (nats.Option, error) {
	if strings.Contains(creds, "BEGIN NATS USER JWT") {
		jwt, err := nkeys.ParseDecoratedJWT([]byte(creds))
		if err != nil {
			return nil, fmt.Errorf("no user JWT: %v", err)
		}
		kp, err := nkeys.ParseDecoratedNKey([]byte(creds))
		if err != nil {
			return nil, fmt.Errorf("no user seed: %v", err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, err
		}
		return nats.UserJWTAndSeed(jwt, string(seed)), nil
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(creds)))
	if err != nil {
		return nil, errors.New("neither a user JWT and seed nor an nkey seed")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, kp.Sign), nil
}
