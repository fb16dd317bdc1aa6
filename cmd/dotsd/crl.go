package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/levee-dots/levee/dotsserver"
)

// crl is tls.crl as the signal channel takes it: the lists, verified
// against the certificates of tls.client-cas.
func (c *fileConfig) crl() (dotsserver.CRL, error) {
	if len(c.TLS.CRL) == 0 {
		return dotsserver.CRL{}, nil
	}
	var issuers []*x509.Certificate
	for _, path := range c.TLS.ClientCAs {
		certs, err := readCerts(path)
		if err != nil {
			return dotsserver.CRL{}, fmt.Errorf("tls.client-cas: %w", err)
		}
		issuers = append(issuers, certs...)
	}
	return dotsserver.CRL{Files: c.TLS.CRL, Issuers: issuers}, nil
}

// readCerts returns the certificates of a PEM file.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, len(out)+1, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no CERTIFICATE PEM block", path)
	}
	return out, nil
}
