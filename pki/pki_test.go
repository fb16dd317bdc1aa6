package pki

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func newCA(t *testing.T, cn string) *CA {
	t.Helper()
	ca, err := NewCA(cn, 365*day)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", cn, err)
	}
	return ca
}

func parseLeaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE block in %q", certPEM)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keyPair(t *testing.T, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixture is a CA with a server and a client certificate, plus a foreign CA
// with its own client and server certificates.
type fixture struct {
	ca, other                    *CA
	srvPEM, srvKey               []byte
	cliPEM, cliKey               []byte
	otherCliPEM, otherCliKey     []byte
	otherSrvPEM, otherSrvKey     []byte
	pool                         *x509.CertPool
	localhostIPs                 []net.IP
	srvLeaf, cliLeaf, otherCLeaf *x509.Certificate
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ca: newCA(t, "test CA"), other: newCA(t, "other CA")}
	f.localhostIPs = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
	var err error
	issue := []struct {
		c, k *[]byte
		fn   func() ([]byte, []byte, error)
	}{
		{&f.srvPEM, &f.srvKey, func() ([]byte, []byte, error) {
			return f.ca.IssueServer([]string{"localhost"}, f.localhostIPs, day)
		}},
		{&f.cliPEM, &f.cliKey, func() ([]byte, []byte, error) { return f.ca.IssueClient("alice", day) }},
		{&f.otherCliPEM, &f.otherCliKey, func() ([]byte, []byte, error) { return f.other.IssueClient("mallory", day) }},
		{&f.otherSrvPEM, &f.otherSrvKey, func() ([]byte, []byte, error) {
			return f.other.IssueServer([]string{"localhost"}, f.localhostIPs, day)
		}},
	}
	for _, is := range issue {
		if *is.c, *is.k, err = is.fn(); err != nil {
			t.Fatal(err)
		}
	}
	f.pool = x509.NewCertPool()
	f.pool.AddCert(f.ca.Cert)
	f.srvLeaf, f.cliLeaf, f.otherCLeaf = parseLeaf(t, f.srvPEM), parseLeaf(t, f.cliPEM), parseLeaf(t, f.otherCliPEM)
	return f
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		cert    *x509.Certificate
		usage   x509.ExtKeyUsage
		host    string
		wantErr bool
	}{
		{"client for client auth", f.cliLeaf, x509.ExtKeyUsageClientAuth, "", false},
		{"server for localhost", f.srvLeaf, x509.ExtKeyUsageServerAuth, "localhost", false},
		{"server for 127.0.0.1", f.srvLeaf, x509.ExtKeyUsageServerAuth, "127.0.0.1", false},
		{"server for ::1", f.srvLeaf, x509.ExtKeyUsageServerAuth, "::1", false},
		{"server for other host", f.srvLeaf, x509.ExtKeyUsageServerAuth, "example.com", true},
		{"client for server auth", f.cliLeaf, x509.ExtKeyUsageServerAuth, "", true},
		{"server for client auth", f.srvLeaf, x509.ExtKeyUsageClientAuth, "", true},
		{"client from other CA", f.otherCLeaf, x509.ExtKeyUsageClientAuth, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cert.Verify(x509.VerifyOptions{Roots: f.pool, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Verify: err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
	// Certificate shape.
	if f.srvLeaf.Subject.CommonName != "localhost" || f.cliLeaf.Subject.CommonName != "alice" ||
		len(f.cliLeaf.DNSNames) != 1 || f.cliLeaf.DNSNames[0] != "alice" {
		t.Errorf("unexpected names: server CN %q, client CN %q SANs %q", f.srvLeaf.Subject.CommonName, f.cliLeaf.Subject.CommonName, f.cliLeaf.DNSNames)
	}
	for _, c := range []*x509.Certificate{f.ca.Cert, f.srvLeaf, f.cliLeaf} {
		if c.SignatureAlgorithm != x509.ECDSAWithSHA256 || len(c.SubjectKeyId) == 0 || len(c.AuthorityKeyId) == 0 {
			t.Errorf("%s: sigalg %v, SKID %x, AKID %x", c.Subject.CommonName, c.SignatureAlgorithm, c.SubjectKeyId, c.AuthorityKeyId)
		}
	}
	if !bytes.Equal(f.cliLeaf.AuthorityKeyId, f.ca.Cert.SubjectKeyId) || !f.ca.Cert.IsCA ||
		f.ca.Cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || f.ca.Cert.SerialNumber.BitLen() < 64 {
		t.Errorf("bad CA or AKID: %+v", f.ca.Cert)
	}
	if d := time.Until(f.ca.Cert.NotBefore); d > -59*time.Minute || d < -61*time.Minute {
		t.Errorf("CA NotBefore is %v from now, want about -1h", d)
	}
}

type hsResult struct {
	err  error
	cuid string
}

// handshake runs a mutually authenticated TLS handshake over loopback TCP.
func handshake(t *testing.T, pool *x509.CertPool, srv, cli tls.Certificate, maxVersion uint16) (serverRes hsResult, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan hsResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- hsResult{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs: pool, MaxVersion: maxVersion})
		if err := s.Handshake(); err != nil {
			ch <- hsResult{err: err}
			return
		}
		res := hsResult{cuid: CUID(s.ConnectionState().PeerCertificates[0])}
		if _, res.err = s.Write([]byte("ok")); res.err == nil {
			_, res.err = io.Copy(io.Discard, s) // until the client's close_notify
		}
		ch <- res
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Always send cli: with Config.Certificates Go would withhold a
	// certificate the server's CA list does not accept.
	sendCert := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cli, nil }
	c := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "localhost", GetClientCertificate: sendCert, MaxVersion: maxVersion})
	clientErr = c.Handshake()
	if clientErr == nil { // TLS 1.3 reports client-certificate rejection on the first read
		buf := make([]byte, 2)
		if _, clientErr = io.ReadFull(c, buf); clientErr == nil && string(buf) != "ok" {
			clientErr = errors.New("unexpected data " + string(buf))
		}
	}
	c.Close()
	return <-ch, clientErr
}

func TestHandshake(t *testing.T) {
	f := newFixture(t)
	srv, cli := keyPair(t, f.srvPEM, f.srvKey), keyPair(t, f.cliPEM, f.cliKey)
	otherCli, otherSrv := keyPair(t, f.otherCliPEM, f.otherCliKey), keyPair(t, f.otherSrvPEM, f.otherSrvKey)
	tests := []struct {
		name          string
		srv, cli      tls.Certificate
		version       uint16
		wantServerErr bool
		wantClientErr bool
	}{
		{"mutual auth TLS 1.3", srv, cli, tls.VersionTLS13, false, false},
		{"mutual auth TLS 1.2", srv, cli, tls.VersionTLS12, false, false},
		{"client from other CA TLS 1.3", srv, otherCli, tls.VersionTLS13, true, true},
		{"client from other CA TLS 1.2", srv, otherCli, tls.VersionTLS12, true, true},
		{"server cert as client cert", srv, srv, tls.VersionTLS13, true, true},
		{"server from other CA", otherSrv, cli, tls.VersionTLS13, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr, cerr := handshake(t, f.pool, tt.srv, tt.cli, tt.version)
			if (sr.err != nil) != tt.wantServerErr || (cerr != nil) != tt.wantClientErr {
				t.Fatalf("server err = %v (want err %v), client err = %v (want err %v)", sr.err, tt.wantServerErr, cerr, tt.wantClientErr)
			}
			if tt.wantServerErr && tt.srv.Leaf == srv.Leaf {
				var ve *tls.CertificateVerificationError
				if !errors.As(sr.err, &ve) {
					t.Errorf("server err = %v, want a CertificateVerificationError", sr.err)
				}
			}
			if !tt.wantServerErr && sr.cuid != CUID(f.cliLeaf) {
				t.Errorf("server saw cuid %q, want %q", sr.cuid, CUID(f.cliLeaf))
			}
		})
	}
}

func TestCUID(t *testing.T) {
	f := newFixture(t)
	for _, c := range []*x509.Certificate{f.ca.Cert, f.srvLeaf, f.cliLeaf, f.otherCLeaf} {
		t.Run(c.Subject.CommonName, func(t *testing.T) {
			got := CUID(c)
			sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			want := strings.TrimRight(base64.URLEncoding.EncodeToString(sum[:16]), "=")
			if got != want || len(got) != 22 {
				t.Errorf("CUID = %q (len %d), want %q (len 22)", got, len(got), want)
			}
		})
	}
	if CUID(f.cliLeaf) == CUID(f.otherCLeaf) {
		t.Error("distinct keys gave the same cuid")
	}
	if CUID(nil) != "" {
		t.Error("CUID(nil) is not empty")
	}
	// printf levee | openssl dgst -sha256 -binary | head -c 16 | basenc --base64url | tr -d =
	golden := []struct{ spki, want string }{
		{"levee", "Cp6fWgceARtgbQ95e423ow"},
		{"", "47DEQpj8HBSa-_TImW-5JA"}, // SHA-256 of the empty string starts e3b0c442...
	}
	for _, g := range golden {
		if got := CUIDFromSPKI([]byte(g.spki)); got != g.want {
			t.Errorf("CUIDFromSPKI(%q) = %q, want %q", g.spki, got, g.want)
		}
	}
}

func TestLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "round trip")
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("KeyPEM is not PKCS#8: %q", keyPEM)
	}
	sec1, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	certPath := writeTemp(t, dir, "ca.pem", ca.CertPEM)
	keyPath := writeTemp(t, dir, "ca-key.pem", keyPEM)
	sec1Path := writeTemp(t, dir, "sec1.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	otherKey, _ := newCA(t, "other").KeyPEM()
	otherPath := writeTemp(t, dir, "other-key.pem", otherKey)
	leafPEM, leafKey, err := ca.IssueClient("bob", day)
	if err != nil {
		t.Fatal(err)
	}
	leafPath, leafKeyPath := writeTemp(t, dir, "leaf.pem", leafPEM), writeTemp(t, dir, "leaf-key.pem", leafKey)
	tests := []struct {
		name, cert, key, wantErr string
	}{
		{"pkcs8", certPath, keyPath, ""},
		{"sec1", certPath, sec1Path, ""},
		{"mismatched key", certPath, otherPath, "does not match"},
		{"not a CA", leafPath, leafKeyPath, "not a CA"},
		{"missing key", certPath, filepath.Join(dir, "nope.pem"), "nope.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadCA(tt.cert, tt.key)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadCA err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Cert.Equal(ca.Cert) || !bytes.Equal(got.CertPEM, ca.CertPEM) || !got.Key.Equal(ca.Key) {
				t.Fatal("loaded CA differs")
			}
			c, _, err := got.IssueClient("carol", day)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parseLeaf(t, c).Verify(x509.VerifyOptions{Roots: mustPool(t, ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mustPool(t *testing.T, ca *CA) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}
