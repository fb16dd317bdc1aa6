package dotsserver_test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/store"
)

// writeCRL writes a list signed by ca revoking serials (PEM or DER) and
// gives the file a modification time of its own.
func writeCRL(t *testing.T, path string, ca *pki.CA, number int64, pemEncoded bool, serials ...*big.Int) {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour)}
	for _, sn := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: sn, RevocationTime: now})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if pemEncoded {
		der = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	if err := os.WriteFile(path, der, 0o644); err != nil {
		t.Fatal(err)
	}
	mod := time.Unix(1_700_000_000+number, 0)
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func leafOf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// crlEnv is a server whose tls.crl is one file, at first revoking nothing.
func crlEnv(t *testing.T, logs *logBuffer) (*env, *pki.CA, string) {
	t.Helper()
	var opts *dotsserver.Options
	var ca *pki.CA
	path := filepath.Join(t.TempDir(), "clients.crl")
	e := newEnvSeeded(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		opts = o
		o.Logger = logs.logger()
	}, func(e *env) {
		var err error
		if ca, err = pki.LoadCA(e.dev.CAPath, e.dev.CAKeyPath); err != nil {
			t.Fatal(err)
		}
		writeCRL(t, path, ca, 1, true)
		opts.CRL = dotsserver.CRL{Files: []string{path}, Issuers: []*x509.Certificate{ca.Cert}}
	})
	return e, ca, path
}

// TestCRL: a client certificate its CA's list (tls.crl) revokes is refused
// in the handshake, with a log line naming its serial; when the list is
// rewritten to revoke a certificate, its sessions are closed at the next
// check, and the other clients keep theirs.
func TestCRL(t *testing.T) {
	var logs logBuffer
	e, ca, path := crlEnv(t, &logs)
	alphaLeaf := leafOf(t, e.dev.Clients["alpha"].Cert)
	var alpha []*rawConn
	for _, transport := range []string{"dtls", "tls"} {
		rc := dialRaw(t, e, "alpha", transport)
		if r := rc.roundTrip(t, rc.get(rc.token(), -1, "mitigate", "cuid="+rc.cuid)); r.Code != codes.NotFound { // no requests yet
			t.Fatalf("alpha over %s before revocation: %v %q", transport, r.Code, diagOf(r))
		}
		alpha = append(alpha, rc)
	}
	alpha = append(alpha, dialRaw(t, e, "alpha", "dtls")) // a session that sent nothing yet
	beta := e.client(t, "beta", "tls")
	if changed, err := e.Srv.ReloadCRL(); err != nil || changed {
		t.Fatalf("reload of an unchanged list: changed %v, err %v", changed, err)
	}

	writeCRL(t, path, ca, 2, false, big.NewInt(12345), alphaLeaf.SerialNumber) // DER this time
	if changed, err := e.Srv.ReloadCRL(); err != nil || !changed {
		t.Fatalf("reload of a rewritten list: changed %v, err %v", changed, err)
	}
	for _, rc := range alpha {
		rc.closedByServer(t)
	}
	serial := strings.ToUpper(alphaLeaf.SerialNumber.Text(16))
	if got := logs.lines("session of a revoked client certificate closed", serial); len(got) != 3 {
		t.Fatalf("%d log lines about closed sessions, want 3: %q", len(got), got)
	}
	for _, transport := range []string{"dtls", "tls"} {
		if err := refused(e, e.ClientCert(t, "alpha"), transport); err != nil {
			t.Fatalf("revoked certificate over %s: %v", transport, err)
		}
	}
	if got := logs.lines("level=WARN", "revoked client certificate: handshake refused", "serial="+serial); len(got) != 1 {
		t.Fatalf("%d log lines about refused handshakes in one interval, want 1: %q", len(got), got)
	}
	expect(t, dots.Created)(beta.Mitigate(ctx(t), 1, scope("203.0.113.200/32", 3600)))
	expect(t, dots.Content)(e.client(t, "beta", "dtls").Status(ctx(t), nil, ""))

	// A list the server cannot verify leaves the one in force.
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeCRL(t, path, other, 3, true)
	if _, err := e.Srv.ReloadCRL(); err == nil || !strings.Contains(err.Error(), "not signed by any client CA") {
		t.Fatalf("reload of a list of another CA: %v", err)
	}
	if err := refused(e, e.ClientCert(t, "alpha"), "tls"); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

// TestCRLRefusedAtStart: lists that do not load stop New, naming the file.
func TestCRLRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("client CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.crl")
	if err := os.WriteFile(garbage, []byte("not a list"), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.crl")
	writeCRL(t, foreign, other, 1, true)
	for _, tc := range []struct {
		name string
		crl  dotsserver.CRL
		want string
	}{
		{"missing file", dotsserver.CRL{Files: []string{filepath.Join(dir, "none.crl")}, Issuers: []*x509.Certificate{ca.Cert}}, "none.crl"},
		{"not a list", dotsserver.CRL{Files: []string{garbage}, Issuers: []*x509.Certificate{ca.Cert}}, "garbage.crl"},
		{"other CA", dotsserver.CRL{Files: []string{foreign}, Issuers: []*x509.Certificate{ca.Cert}}, "not signed by any client CA"},
		{"no issuers", dotsserver.CRL{Files: []string{foreign}}, "no issuer certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dotsserver.New(dotsserver.Options{Store: store.NewMemory(), Domains: dotstest.Domains(), CRL: tc.crl})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
