package natsauth

import (
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
