package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/levee-dots/levee/pki"
)

// loadDNSName is the DNS SAN by which bench.yaml maps every load certificate
// to the "load" client domain.
const loadDNSName = "load.levee.test"

// issuer signs load-client certificates with the dev CA.
type issuer struct {
	ca    *pki.CA
	roots *x509.CertPool
}

func newIssuer(dir string) (*issuer, error) {
	ca, err := pki.LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &issuer{ca: ca, roots: roots}, nil
}

// client issues the certificate of load client n: ECDSA P-256, CN load-n,
// DNS SAN load.levee.test, client authentication. Each has its own key, so
// each is its own DOTS client (own cuid).
func (is *issuer) client(n int) (tls.Certificate, error) { return is.clientFor(n, loadDNSName) }

// clientFor is client with dnsName as the DNS SAN.
func (is *issuer) clientFor(n int, dnsName string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("load-%d", n)},
		DNSNames:              []string{dnsName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
		AuthorityKeyId:        is.ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.ca.Cert, &key.PublicKey, is.ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing load-%d: %w", n, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// clients issues certificates first .. first+count-1, using every core.
func (is *issuer) clients(first, count int) ([]tls.Certificate, error) {
	out := make([]tls.Certificate, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < count; i += workers {
				out[i], errs[i] = is.client(first + i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
