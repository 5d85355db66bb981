package embeddedtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are a test certificate authority and what it signed: a server
// certificate for 127.0.0.1 and localhost, usable for routes too, and a
// client certificate; as files in a test directory and as TLS configs.
type Certs struct {
	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string
	Pool                                                                 *x509.CertPool
	Server, Client                                                       tls.Certificate
}

// NewCerts makes a fresh authority and certificates for one test.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	c := &Certs{Pool: x509.NewCertPool()}
	caKey, caCert, caDER := newCert(t, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "a2abus test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	c.Pool.AddCert(caCert)
	c.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	for _, leaf := range []struct {
		name      string
		usage     []x509.ExtKeyUsage
		out       *tls.Certificate
		cert, key *string
	}{
		{"server", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, &c.Server, &c.ServerCertFile, &c.ServerKeyFile},
		{"client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, &c.Client, &c.ClientCertFile, &c.ClientKeyFile},
	} {
		key, _, der := newCert(t, caKey, caCert, &x509.Certificate{
			Subject: pkix.Name{CommonName: "a2abus test " + leaf.name}, ExtKeyUsage: leaf.usage,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		})
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		*leaf.cert = writePEM(t, dir, leaf.name+".pem", "CERTIFICATE", der)
		*leaf.key = writePEM(t, dir, leaf.name+"-key.pem", "EC PRIVATE KEY", keyDER)
		*leaf.out = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return c
}

// ServerTLS is the TLS config of a server that requires client
// certificates from this authority; it serves routes too.
func (c *Certs) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.Server},
		ClientCAs:    c.Pool,
		RootCAs:      c.Pool, // when it dials a route
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// newCert makes a key and a certificate from tmpl, signed by parent (self
// signed when parent is nil).
func newCert(t testing.TB, parentKey *ecdsa.PrivateKey, parent, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t testing.TB, dir, name, kind string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
