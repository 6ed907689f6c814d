package bus

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/contract"
	"github.com/gorun-hpc/gorun/internal/natsauth"
	"github.com/gorun-hpc/gorun/internal/subject"
)

// Credentials for an existing NATS server (--nats).
//
// A shared server isolates jobs only when it is told who may use which
// subjects. With an account signing key (--nats-account-key), gorun mints
// for every job a user per rank, whose JWT lets it publish only as that
// rank and subscribe only to that rank's inbox and the job's shared
// subjects (subject.Permissions, the same as on the embedded servers), and
// which expires with the job. Without one, every rank uses what gorun was
// given (a token, a .creds file), and gorun says once that the job is not
// isolated from the server's other users.

// MintLifetime is how long minted credentials stay valid after the job's
// start when the job has no --timeout: long enough for a batch job, short
// enough that a leaked one does not last.
const MintLifetime = 24 * time.Hour

// External is what gorun and its ranks present to a server given with
// --nats.
type External struct {
	Token string // GORUN_NATS_TOKEN, or the token the URL held
	creds string // the --nats-creds file's content
	TLS   TLSFiles
	// signer mints per-rank users (--nats-account-key), issued for account.
	signer  nkeys.KeyPair
	account string
}

// TLSFiles are the TLS files of --nats-ca, --nats-cert and --nats-key.
type TLSFiles struct{ CA, Cert, Key string }

// ExternalConfig is what gorun was given for a server of its user's
// (--nats): the URL list, and the files of --nats-ca, --nats-cert,
// --nats-key, --nats-creds and --nats-account-key, and --nats-account.
type ExternalConfig struct {
	URL                 string
	CA, Cert, Key       string
	Creds               string
	AccountKey, Account string
}

// NewExternal reads the files cfg names, and the token of the URL or of
// GORUN_NATS_TOKEN.
func NewExternal(cfg ExternalConfig) (*External, error) {
	b := &External{Token: os.Getenv(contract.NATSToken)}
	// Absolute, for ranks that start in another directory.
	for _, f := range []struct {
		dst  *string
		path string
	}{{&b.TLS.CA, cfg.CA}, {&b.TLS.Cert, cfg.Cert}, {&b.TLS.Key, cfg.Key}} {
		if f.path != "" {
			abs, err := filepath.Abs(f.path)
			if err != nil {
				return nil, err
			}
			*f.dst = abs
		}
	}
	if t := URLToken(cfg.URL); t != "" {
		b.Token = t
	}
	if cfg.Creds != "" {
		data, err := os.ReadFile(cfg.Creds)
		if err != nil {
			return nil, fmt.Errorf("--nats-creds %s: %w", cfg.Creds, unwrapPath(err))
		}
		if _, err := jwt.ParseDecoratedJWT(data); err != nil {
			return nil, fmt.Errorf("--nats-creds %s: not a NATS .creds file (a user JWT and its seed): %v", cfg.Creds, err)
		}
		if _, err := jwt.ParseDecoratedUserNKey(data); err != nil {
			return nil, fmt.Errorf("--nats-creds %s: no user seed: %v", cfg.Creds, err)
		}
		b.creds = string(data)
	}
	if cfg.AccountKey != "" {
		kp, account, err := readSigner(cfg.AccountKey, cfg.Account, b.creds)
		if err != nil {
			return nil, fmt.Errorf("--nats-account-key %s: %w", cfg.AccountKey, err)
		}
		b.signer, b.account = kp, account
	}
	return b, nil
}

// readSigner reads an account signing key (an nkey account seed, "SA...",
// alone or among other lines) from path. The account it signs for is
// account if given, else the issuer of the --nats-creds user (creds), else
// the key's own (an account's primary key signs for itself).
func readSigner(path, account, creds string) (nkeys.KeyPair, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", unwrapPath(err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("readable by other users (mode %v): chmod 600 it", fi.Mode().Perm())
	}
	kp, err := jwt.ParseDecoratedNKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("no nkey seed: %v", err)
	}
	seed, err := kp.Seed()
	if err != nil || len(seed) < 2 || seed[1] != 'A' {
		return nil, "", errors.New("not an account key (its seed starts with SA)")
	}
	switch {
	case account != "":
		if !nkeys.IsValidPublicAccountKey(account) {
			return nil, "", fmt.Errorf("--nats-account %s is not an account's public key", account)
		}
	case creds != "":
		tok, _ := jwt.ParseDecoratedJWT([]byte(creds))
		uc, err := jwt.DecodeUserClaims(tok)
		if err != nil {
			return nil, "", fmt.Errorf("--nats-creds: %v", err)
		}
		account = uc.IssuerAccount
		if account == "" {
			account = uc.Issuer
		}
	default:
		if account, err = kp.PublicKey(); err != nil {
			return nil, "", err
		}
	}
	return kp, account, nil
}

// Isolated reports whether the job's ranks get users of their own.
func (b *External) Isolated() bool { return b.signer != nil }

// CheckOptions are the options of gorun's own connection to the server.
func (b *External) CheckOptions(job string, expires time.Time) ([]nats.Option, error) {
	opts := b.tlsOptions()
	switch {
	case b.signer != nil:
		// A user of its own that may do nothing but connect.
		creds, err := b.mint(job, -1, expires)
		if err != nil {
			return nil, err
		}
		opt, err := natsauth.Option(creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	case b.creds != "":
		opt, err := natsauth.Option(b.creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	if b.Token != "" {
		opts = append(opts, nats.Token(b.Token))
	}
	return opts, nil
}

func (b *External) tlsOptions() []nats.Option {
	var opts []nats.Option
	if b.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(b.TLS.CA))
	}
	if b.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(b.TLS.Cert, b.TLS.Key))
	}
	return opts
}

// RankCreds returns each rank's credentials: minted users of their own
// with a signing key, else the same .creds for every rank (nil without).
func (b *External) RankCreds(job string, size int, expires time.Time) (map[int]string, error) {
	if b.signer == nil && b.creds == "" {
		return nil, nil
	}
	out := make(map[int]string, size)
	for r := range size {
		if b.signer == nil {
			out[r] = b.creds
			continue
		}
		c, err := b.mint(job, r, expires)
		if err != nil {
			return nil, err
		}
		out[r] = c
	}
	return out, nil
}

// mint makes a user of the job for rank (-1: gorun itself, which may
// publish and subscribe to nothing), signed with b's key, valid until
// expires, in the .creds format.
func (b *External) mint(job string, rank int, expires time.Time) (string, error) {
	return mintUser(b.signer, b.account, job, rank, expires)
}

// mintUser makes a user of job for rank (-1 for gorun's own connection,
// which may neither publish nor subscribe), issued by signer for account,
// whose permissions are rank's (subject.Permissions), and which expires at
// expires. It returns the user's JWT and seed in the .creds format.
func mintUser(signer nkeys.KeyPair, account, job string, rank int, expires time.Time) (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	uc := jwt.NewUserClaims(pub)
	uc.Expires = expires.Unix()
	if rank < 0 {
		uc.Name = "gorun " + job
		uc.Pub.Deny.Add(">")
		uc.Sub.Deny.Add(">")
	} else {
		uc.Name = fmt.Sprintf("gorun %s rank %d", job, rank)
		pubs, subs := subject.Permissions(job, rank)
		uc.Pub.Allow.Add(pubs...)
		uc.Sub.Allow.Add(subs...)
	}
	if sp, err := signer.PublicKey(); err == nil && sp != account {
		uc.IssuerAccount = account
	}
	tok, err := uc.Encode(signer)
	if err != nil {
		return "", fmt.Errorf("mint a user: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return "", err
	}
	return string(creds), nil
}

// URLToken returns the token (user info without a password) of the first
// URL of list that has one.
func URLToken(list string) string {
	for _, s := range strings.Split(list, ",") {
		if u, err := url.Parse(withScheme(strings.TrimSpace(s))); err == nil && u.User != nil {
			if _, hasPass := u.User.Password(); !hasPass {
				return u.User.Username()
			}
		}
	}
	return ""
}

// StripUserInfo removes user info from every URL of list: what ranks get
// as GORUN_NATS_URL (the token travels in GORUN_NATS_TOKEN).
func StripUserInfo(list string) string {
	parts := strings.Split(list, ",")
	for i, s := range parts {
		s = strings.TrimSpace(s)
		if u, err := url.Parse(withScheme(s)); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func withScheme(s string) string {
	if !strings.Contains(s, "://") {
		return "nats://" + s
	}
	return s
}

// CheckExternal connects to the --nats server as gorun and returns an error
// if none of urls answers within timeout.
func CheckExternal(ctx context.Context, urls string, timeout time.Duration, auth []nats.Option) error {
	opts := append([]nats.Option{
		nats.Name("gorun"),
		nats.Timeout(timeout),
		nats.NoReconnect(),
		nats.RetryOnFailedConnect(false),
	}, auth...)
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(urls, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		err := r.nc.FlushTimeout(timeout)
		r.nc.Close()
		return err
	case <-ctx.Done():
		go func() { // close the connection if it comes after all
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return context.Cause(ctx)
	}
}

// unwrapPath turns "open x: no such file or directory" into "no such file
// or directory", since the caller names the path already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
