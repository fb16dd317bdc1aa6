package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/pki"
)

// TestConfigCRL: dotsd with tls.crl (a path relative to the file) refuses
// the certificate the list revokes, names its serial in the log, and
// serves the other clients.
func TestConfigCRL(t *testing.T) {
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	_, stop := runDevServer(t, "--dir", dir, "--signal-listen", addr)
	stop()

	ca, err := pki.LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	_, alpha, err := pki.LoadKeyPair(filepath.Join(dir, "clients", "alpha", "cert.pem"), filepath.Join(dir, "clients", "alpha", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: alpha.SerialNumber, RevocationTime: now}}}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clients.crl"), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "dotsd.yaml")
	text := string(readFile(t, cfgPath))
	if !strings.Contains(text, "client-cas: [ca.pem]\n") {
		t.Fatalf("test bug: the development configuration has no client-cas line:\n%s", text)
	}
	text = strings.Replace(text, "client-cas: [ca.pem]\n", "client-cas: [ca.pem]\n  crl: [clients.crl]\n", 1)
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "clients.crl"); len(cfg.TLS.CRL) != 1 || cfg.TLS.CRL[0] != want {
		t.Fatalf("tls.crl %q, want [%s]", cfg.TLS.CRL, want)
	}

	stderr, stop := runDevServer(t, "--dir", dir, "--signal-listen", addr)
	defer stop()
	roots, err := pki.LoadCertPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	dial := func(name, transport string) error {
		cert, _, err := pki.LoadKeyPair(filepath.Join(dir, "clients", name, "cert.pem"), filepath.Join(dir, "clients", name, "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{addr}, Certificate: cert, RootCAs: roots, Transport: transport})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Status(ctx, nil, "")
		return err
	}
	for _, transport := range []string{"dtls", "tls"} {
		if err := dial("alpha", transport); err == nil {
			t.Fatalf("revoked alpha got a session over %s", transport)
		}
		if err := dial("beta", transport); err != nil {
			t.Fatalf("beta over %s: %v", transport, err)
		}
	}
	serial := strings.ToUpper(alpha.SerialNumber.Text(16))
	if log := stderr.String(); !strings.Contains(log, "revoked client certificate: handshake refused") || !strings.Contains(log, serial) {
		t.Fatalf("no log line names the revoked serial %s:\n%s", serial, log)
	}
}
