package bus

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/natsauth"
	"github.com/gorun-hpc/gorun/internal/subject"
)

func TestURLToken(t *testing.T) {
	for _, tt := range []struct{ list, token, stripped string }{
		{"nats://h:4222", "", "nats://h:4222"},
		{"nats://tok@h:4222", "tok", "nats://h:4222"},
		{"h:4222,tls://tok@g:4222", "tok", "h:4222,tls://g:4222"},
	} {
		if got := URLToken(tt.list); got != tt.token {
			t.Errorf("URLToken(%q) = %q, want %q", tt.list, got, tt.token)
		}
		if got := StripUserInfo(tt.list); got != tt.stripped {
			t.Errorf("StripUserInfo(%q) = %q, want %q", tt.list, got, tt.stripped)
		}
	}
}

// A minted user has rank's permissions of its job only, is issued for the
// account by its signing key, and expires.
func TestMintUser(t *testing.T) {
	acct, _ := nkeys.CreateAccount()
	apub, _ := acct.PublicKey()
	signer, _ := nkeys.CreateAccount()
	expires := time.Now().Add(time.Hour)
	creds, err := mintUser(signer, apub, "job", 2, expires)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseDecoratedJWT([]byte(creds))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	spub, _ := signer.PublicKey()
	if uc.Issuer != spub || uc.IssuerAccount != apub || uc.Expires != expires.Unix() {
		t.Errorf("issuer %s for %s, expires %d; want %s for %s, %d", uc.Issuer, uc.IssuerAccount, uc.Expires, spub, apub, expires.Unix())
	}
	pub, sub := subject.Permissions("job", 2)
	if strings.Join(uc.Pub.Allow, " ") != strings.Join(pub, " ") || strings.Join(uc.Sub.Allow, " ") != strings.Join(sub, " ") {
		t.Errorf("permissions pub %q sub %q, want %q %q", uc.Pub.Allow, uc.Sub.Allow, pub, sub)
	}
	if _, err := natsauth.Option(creds); err != nil {
		t.Error(err)
	}
	// gorun's own user may do nothing.
	own, _ := mintUser(signer, apub, "job", -1, expires)
	tok, _ = jwt.ParseDecoratedJWT([]byte(own))
	uc, _ = jwt.DecodeUserClaims(tok)
	if len(uc.Pub.Allow) != 0 || strings.Join(uc.Pub.Deny, "") != ">" || strings.Join(uc.Sub.Deny, "") != ">" {
		t.Errorf("gorun's user: pub %v sub %v", uc.Pub, uc.Sub)
	}
}

// A signing key readable by others is refused; one that is not an
// account key too.
func TestReadSigner(t *testing.T) {
	dir := t.TempDir()
	kp, _ := nkeys.CreateAccount()
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, seed, 0o600)
	if _, acct, err := readSigner(good, "", ""); err != nil || acct != pub {
		t.Errorf("readSigner = %s, %v; want its own account %s", acct, err, pub)
	}
	open := filepath.Join(dir, "open")
	os.WriteFile(open, seed, 0o644)
	if _, _, err := readSigner(open, "", ""); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key readable by others: %v", err)
	}
	user, _ := nkeys.CreateUser()
	useed, _ := user.Seed()
	notAcct := filepath.Join(dir, "user")
	os.WriteFile(notAcct, useed, 0o600)
	if _, _, err := readSigner(notAcct, "", ""); err == nil || !strings.Contains(err.Error(), "not an account key") {
		t.Errorf("a user key: %v", err)
	}
	if _, _, err := readSigner(good, "nope", ""); err == nil {
		t.Error("a bad --nats-account was taken")
	}
}

// --nats-ca: gorun trusts a TLS server whose certificate that CA signed,
// and no other, and hands the ranks the same file (TLS.CA; launcher puts
// it in GORUN_NATS_CA).
func TestExternalTLS(t *testing.T) {
	ca, err := NewCA("site")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	url := strings.Replace(ns.ClientURL(), "nats://", "tls://", 1)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, ca.CertPEM, 0o644)
	ctx := context.Background()

	bus, err := NewExternal(ExternalConfig{URL: url, CA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if bus.TLS.CA != caFile {
		t.Errorf("the CA file for the ranks is %q, want %q", bus.TLS.CA, caFile)
	}
	auth, _ := bus.CheckOptions("job", time.Now().Add(time.Hour))
	if err := CheckExternal(ctx, url, 5*time.Second, auth); err != nil {
		t.Fatalf("with --nats-ca: %v", err)
	}
	if err := CheckExternal(ctx, url, 5*time.Second, nil); err == nil {
		t.Fatal("connected to a server whose certificate no trusted CA signed")
	}
}
