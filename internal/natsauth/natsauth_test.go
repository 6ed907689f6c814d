package natsauth

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Option takes an nkey seed and a .creds file's content, and refuses
// anything else with an error that says what it wanted.
func TestOption(t *testing.T) {
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	if _, err := Option(string(seed) + "\n"); err != nil {
		t.Errorf("an nkey seed: %v", err)
	}
	account, _ := nkeys.CreateAccount()
	pub, _ := user.PublicKey()
	tok, err := jwt.NewUserClaims(pub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := jwt.FormatUserConfig(tok, seed)
	if _, err := Option(string(creds)); err != nil {
		t.Errorf("a .creds file: %v", err)
	}
	for _, bad := range []string{"", "hunter2", "-----BEGIN NATS USER JWT-----\nnot one\n"} {
		if _, err := Option(bad); err == nil || !strings.Contains(err.Error(), "JWT") && !strings.Contains(err.Error(), "seed") {
			t.Errorf("Option(%q) = %v, want an error naming what it wants", bad, err)
		}
	}
}

// TestSignerAsStandard: the signer's public key and signatures are
// crypto/ed25519's, to the byte, for many seeds and messages.
func TestSignerAsStandard(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		seed := make([]byte, ed25519.SeedSize)
		for j := range seed {
			seed[j] = byte(rng.Uint32())
		}
		if i == 0 {
			clear(seed)
		}
		msg := make([]byte, rng.IntN(100))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		want := ed25519.NewKeyFromSeed(seed)
		k := newSigner(seed)
		if !bytes.Equal(k.pub, want.Public().(ed25519.PublicKey)) {
			t.Fatalf("seed %x: public key %x, want %x", seed, k.pub, want.Public())
		}
		sig, err := k.sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if ws := ed25519.Sign(want, msg); !bytes.Equal(sig, ws) {
			t.Fatalf("seed %x, message %x: signature %x, want %x", seed, msg, sig, ws)
		}
	}
}

// TestOptionSignsAsNkeys: the option from an nkey seed gives the key
// pair's public key and signatures that verify with it.
func TestOptionSignsAsNkeys(t *testing.T) {
	user, _ := nkeys.CreateUser()
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	prefix, raw, _ := nkeys.DecodeSeed(seed)
	k := newSigner(raw)
	got, err := nkeys.Encode(prefix, k.pub)
	if err != nil || string(got) != pub {
		t.Fatalf("public key %s (%v), want %s", got, err, pub)
	}
	nonce := []byte("a server's nonce")
	sig, _ := k.sign(nonce)
	if err := user.Verify(nonce, sig); err != nil {
		t.Fatalf("the signature does not verify: %v", err)
	}
}
