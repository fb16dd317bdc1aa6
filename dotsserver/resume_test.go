package dotsserver_test

import (
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// dialCached is e.client with a session cache.
func (e *env) dialCached(t *testing.T, name, transport string, sc *dotsclient.SessionCache) (*dotsclient.Client, error) {
	t.Helper()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return dotsclient.Dial(dctx, dotsclient.Config{Servers: []string{e.addr}, Certificate: e.ClientCert(t, name),
		RootCAs: e.roots, Transport: transport, Sessions: sc})
}

// TestResumption: a client reconnecting with its session cache resumes
// over TLS (crypto/tls tickets, RFC 9132 §7: resumption without server
// state) and keeps its identity: the mitigation it made in the first
// session is its own in the resumed one, and another client's is not.
// Over DTLS the server refuses resumption (pion does not resume
// certificate-authenticated sessions; resume.go): the reconnection is a
// full handshake, with the same identity.
func TestResumption(t *testing.T) {
	for _, tc := range []struct {
		transport   string
		wantResumed bool
		mid         uint32
		prefix      string
	}{
		{"tls", true, 10, "203.0.113.80/32"},
		{"dtls", false, 11, "203.0.113.81/32"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1:0", nil)
			sc := dotsclient.NewSessionCache(0)
			c, err := e.dialCached(t, "alpha", tc.transport, sc)
			if err != nil {
				t.Fatal(err)
			}
			if c.Resumed() {
				t.Fatal("the first handshake resumed")
			}
			expect(t, dots.Created)(c.Mitigate(ctx(t), tc.mid, scope(tc.prefix, 3600)))
			c.Close()

			c, err = e.dialCached(t, "alpha", tc.transport, sc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Resumed() != tc.wantResumed {
				t.Fatalf("reconnection resumed: %v, want %v", c.Resumed(), tc.wantResumed)
			}
			r := expect(t, dots.Content)(c.Status(ctx(t), dots.Ptr(tc.mid), ""))
			if got := r.Body.MitigationScope.Scope[0].TargetPrefix; len(got) != 1 || got[0] != tc.prefix {
				t.Fatalf("status in the second session: %v", got)
			}
			expect(t, dots.Created)(c.Mitigate(ctx(t), tc.mid+1, scope(tc.prefix, 600)))
			beta := e.client(t, "beta", tc.transport)
			expect(t, dots.NotFound)(beta.Status(ctx(t), dots.Ptr(tc.mid), ""))
		})
	}
}

// TestResumptionAfterRevocation: a TLS session of a certificate revoked
// since is not resumed into a session: crypto/tls checks a resumed
// session with VerifyConnection, which consults the CRL.
func TestResumptionAfterRevocation(t *testing.T) {
	var logs logBuffer
	e, ca, path := crlEnv(t, &logs)
	sc := dotsclient.NewSessionCache(0)
	c, err := e.dialCached(t, "alpha", "tls", sc)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, dots.NotFound)(c.Status(ctx(t), dots.Ptr[uint32](1), "")) // reads the ticket
	c.Close()
	// The ticket is good: without the revocation it resumes.
	c, err = e.dialCached(t, "alpha", "tls", sc)
	if err != nil || !c.Resumed() {
		t.Fatalf("reconnection before the revocation: resumed %v, err %v", err == nil && c.Resumed(), err)
	}
	expect(t, dots.NotFound)(c.Status(ctx(t), dots.Ptr[uint32](1), ""))
	c.Close()

	writeCRL(t, path, ca, 2, true, leafOf(t, e.dev.Clients["alpha"].Cert).SerialNumber)
	if changed, err := e.Srv.ReloadCRL(); err != nil || !changed {
		t.Fatalf("reload: changed %v, err %v", changed, err)
	}
	c, err = e.dialCached(t, "alpha", "tls", sc)
	if err == nil {
		defer c.Close()
		if _, err = c.Status(ctx(t), nil, ""); err == nil {
			t.Fatalf("a revoked certificate got a session (resumed %v)", c.Resumed())
		}
	}
	if got := logs.lines("revoked client certificate: handshake refused", "transport=tls"); len(got) != 1 {
		t.Fatalf("%d log lines about the refused resumption, want 1: %q", len(got), got)
	}
}

// TestAEADOnly: the server accepts only AEAD cipher suites (RFC 9132 §7,
// RFC 9325 §4.2): a DTLS or TLS 1.2 client offering only an AES-CBC suite
// is refused; one offering AES-GCM gets a session. Over DTLS pion's
// client and OpenSSL's s_client try, over TLS crypto/tls and s_client.
// (crypto/tls would refuse ECDHE-ECDSA-AES128-SHA256 even by default; the
// SHA-1 CBC suites it and pion would accept.)
func TestAEADOnly(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	cert := e.ClientCert(t, "alpha")
	pionDial := func(suite piondtls.CipherSuiteID) error {
		raddr, err := net.ResolveUDPAddr("udp", e.addr)
		if err != nil {
			return err
		}
		dc, err := piondtls.DialWithOptions("udp", raddr, piondtls.WithCertificates(cert), piondtls.WithRootCAs(e.roots),
			piondtls.WithServerName("localhost"), piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
			piondtls.WithCipherSuites(suite))
		if err != nil {
			return err
		}
		defer dc.Close()
		hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return dc.HandshakeContext(hctx)
	}
	goDial := func(suite uint16) error {
		d := tls.Dialer{Config: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: e.roots, ServerName: "localhost",
			MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}, NextProtos: []string{"coap"}}}
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		nc, err := d.DialContext(dctx, "tcp", e.addr)
		if err != nil {
			return err
		}
		return nc.Close()
	}
	for _, tc := range []struct {
		name    string
		dial    func() error
		openssl []string // s_client arguments instead of dial
		ok      bool
	}{
		{name: "pion CBC", dial: func() error { return pionDial(piondtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA) }},
		{name: "pion GCM", dial: func() error { return pionDial(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) }, ok: true},
		{name: "crypto/tls CBC", dial: func() error { return goDial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA) }},
		{name: "crypto/tls GCM", dial: func() error { return goDial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) }, ok: true},
		{name: "s_client TLS CBC", openssl: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"}},
		{name: "s_client TLS CBC-SHA256", openssl: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"}},
		{name: "s_client TLS GCM", openssl: []string{"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, ok: true},
		{name: "s_client DTLS CBC", openssl: []string{"-dtls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"}},
		{name: "s_client DTLS GCM", openssl: []string{"-dtls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.openssl != nil {
				cipher, out := sClient(t, e, tc.openssl...)
				if tc.ok != (cipher != "") {
					t.Fatalf("s_client %v: negotiated %q, want a session: %v\n%s", tc.openssl, cipher, tc.ok, out)
				}
				if tc.ok && cipher != tc.openssl[2] {
					t.Fatalf("s_client negotiated %s, offered only %s", cipher, tc.openssl[2])
				}
				return
			}
			if err := tc.dial(); (err == nil) != tc.ok {
				t.Fatalf("handshake: %v, want a session: %v", err, tc.ok)
			}
		})
	}
}

// sClient runs openssl s_client against the server with alpha's
// certificate and returns the cipher suite of the session it got ("" for
// none) and its output.
func sClient(t *testing.T, e *env, args ...string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	alpha := e.dev.Clients["alpha"]
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	full := append([]string{"s_client", "-connect", e.addr, "-cert", alpha.Cert, "-key", alpha.Key,
		"-CAfile", e.dev.CAPath, "-servername", "localhost"}, args...)
	cmd := exec.CommandContext(cctx, "openssl", full...)
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput() // the exit status says little; the summary tells
	for _, line := range strings.Split(string(out), "\n") {
		// "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"; "(NONE)" without a session
		if _, c, ok := strings.Cut(line, ", Cipher is "); ok && strings.HasPrefix(line, "New") && c != "(NONE)" {
			return strings.TrimSpace(c), string(out)
		}
	}
	return "", string(out)
}
