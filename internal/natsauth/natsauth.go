// Package natsauth turns a rank's NATS credentials, as gorun hands them
// out (GORUN_NATS_CREDS), into a nats.go option: for package mpi, whose
// ranks connect with them, and for the launcher, which connects as a rank
// to announce its death.
package natsauth

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
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
	prefix, seed, err := nkeys.DecodeSeed([]byte(strings.TrimSpace(creds)))
	if err != nil || len(seed) != 32 {
		return nil, errors.New("neither a user JWT and seed nor an nkey seed")
	}
	k := newSigner(seed)
	pub, err := nkeys.Encode(prefix, k.pub)
	if err != nil {
		return nil, err
	}
	return nats.Nkey(string(pub), k.sign), nil
}

// A signer signs with an Ed25519 key as crypto/ed25519 does, to the byte
// (Ed25519 is deterministic; TestSignerAsStandard), but with no table of
// the base point's multiples. crypto/ed25519 computes that table, once a
// process, at its first key or signature: about 1 ms of CPU (256 field
// inversions), in every rank of every job, for the one signature a rank
// makes (the server's nonce, as it connects). A multiplication of the
// base point as any point costs about a tenth of that; a rank makes two
// (its public key, the signature's R).
type signer struct {
	s      *edwards25519.Scalar // the secret scalar
	prefix []byte               // the second half of the seed's hash
	pub    []byte               // the public key, A = s·B
}

// newSigner is the signer of the 32-byte seed (RFC 8032, 5.1.5).
func newSigner(seed []byte) *signer {
	h := sha512.Sum512(seed)
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		panic(err) // 32 bytes always do
	}
	a := new(edwards25519.Point).ScalarMult(s, edwards25519.NewGeneratorPoint())
	return &signer{s: s, prefix: h[32:], pub: a.Bytes()}
}

// sign signs msg (RFC 8032, 5.1.6).
func (k *signer) sign(msg []byte) ([]byte, error) {
	var d [64]byte
	h := sha512.New()
	h.Write(k.prefix)
	h.Write(msg)
	r, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(d[:0]))
	if err != nil {
		return nil, err
	}
	R := new(edwards25519.Point).ScalarMult(r, edwards25519.NewGeneratorPoint()).Bytes()
	h.Reset()
	h.Write(R)
	h.Write(k.pub)
	h.Write(msg)
	c, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(d[:0]))
	if err != nil {
		return nil, err
	}
	S := edwards25519.NewScalar().MultiplyAdd(c, k.s, r)
	return append(R, S.Bytes()...), nil
}
