package bus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

// CA is the certificate authority made for one job: it signs one
// certificate per host of the job, which that host's NATS server shows to,
// and asks of, every other server of the job's cluster. Nothing outside the
// job can join the cluster or read its routes; the keys live in memory
// (gorun's, and each agent's, which gets its own over its ssh channel).
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	CertPEM []byte
	// TicketKey encrypts the TLS session tickets of the job's routes:
	// every server of the job has it (ClusterSpec.TicketKey), so that one
	// resumes, with any other, the session it began with a third.
	TicketKey []byte
}

// certValidity is how long a job's certificates are valid: longer than any
// job, since the CA and its keys are thrown away with it.
const certValidity = 30 * 24 * time.Hour

// NewCA makes a fresh CA for job (named in its subject), its key in
// memory only.
func NewCA(job string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "gorun job " + job},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ticket := make([]byte, 32)
	if _, err := rand.Read(ticket); err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), TicketKey: ticket}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// Issue makes a key and a certificate for one host's server, valid for
// names (IP addresses and host names) and routeName, as both server and
// client.
func (ca *CA) Issue(names ...string) (certPEM, keyPEM []byte, err error) {
	names = append(names, routeName)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "gorun server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// routeName is the name every server of a job dials every other by, in
// TLS (every certificate of the job's CA holds it): one name, so that a
// session begun with one server is resumed with another (the client keeps
// its sessions by the name it dials).
const routeName = "route.gorun.invalid"

// routeTLS is the TLS configuration of a server's routes: its own
// certificate, and only peers with a certificate of the job's CA, both
// when it accepts a route and when it dials one.
//
// With the job's ticket key (ticketKey, 32 bytes), a server resumes, with
// each server it dials, the TLS session it began with another: a
// resumption proves both ends hold the key (the job's secret, as their
// private keys are) and that the dialer showed its certificate when the
// session began, and it skips the four signature checks and two
// signatures of a full handshake, most of its cost. A job's mesh makes
// H(H+1)/2 routes; on 64 hosts of 2 cores the handshakes were a quarter
// of forming it.
func routeTLS(caPEM, certPEM, keyPEM, ticketKey []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("route certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("route certificate: bad CA certificate")
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
		ServerName:   routeName,
		// X25519 alone: the hybrid post-quantum exchange Go offers first
		// made a 32-server mesh cost a third more CPU, and a job's routes
		// live as long as the job.
		CurvePreferences: []tls.CurveID{tls.X25519},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if h := routeHandshake.Load(); h != nil {
				(*h)(cs.DidResume)
			}
			return nil
		},
	}
	if len(ticketKey) == 32 {
		tc.SetSessionTicketKeys([][32]byte{[32]byte(ticketKey)})
		tc.ClientSessionCache = tls.NewLRUClientSessionCache(1) // one name: routeName
	} else {
		tc.SessionTicketsDisabled = true
	}
	return tc, nil
}

// routeHandshake, where a test sets it, is told of every route handshake
// of this process, and whether it resumed a session.
var routeHandshake atomic.Pointer[func(resumed bool)]
