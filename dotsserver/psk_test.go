package dotsserver_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/store"
)

// The PSKs of the tests: alpha has one identity, beta another. The keys
// are ASCII so that coap-client's -k takes them as they are.
var (
	alphaPSK = dotsserver.PSK{Identity: "alpha-psk-1", Key: []byte("alpha-secret-key-0123456789")}
	betaPSK  = dotsserver.PSK{Identity: "beta-psk-1", Key: []byte("beta-secret-key-0123456789ab")}
)

// newPSKEnv is a server whose alpha and beta domains also have a PSK; its
// debug log goes to the returned buffer.
func newPSKEnv(t *testing.T) (*env, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	return newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Domains = dotstest.Domains()
		o.Domains[0].PSKs = []dotsserver.PSK{alphaPSK}
		o.Domains[1].PSKs = []dotsserver.PSK{betaPSK}
	}), logs
}

// wantSuite checks that the server logged a PSK session of identity with
// the ECDHE-PSK AEAD suite (forward secrecy, RFC 9132 §7).
func wantSuite(t *testing.T, logs *logBuffer, identity string) {
	t.Helper()
	for _, l := range logs.lines(`msg="PSK session"`, "identity="+identity) {
		if !strings.Contains(l, "suite=TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256") {
			t.Fatalf("PSK session of %s: %s, want the suite TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", identity, l)
		}
		return
	}
	t.Fatalf("no PSK session of %s logged:\n%s", identity, strings.Join(logs.lines(), "\n"))
}

func dialPSK(ctx context.Context, e *env, p dotsserver.PSK, cuid string) (*dotsclient.Client, error) {
	return dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{e.addr},
		PSK: &dotsclient.PSK{Identity: p.Identity, Key: p.Key}, CUID: cuid, KeepCUID: true})
}

func pskClient(t *testing.T, e *env, p dotsserver.PSK, cuid string) *dotsclient.Client {
	t.Helper()
	cl, err := dialPSK(ctx(t), e, p, cuid)
	if err != nil {
		t.Fatalf("PSK dial as %s: %v", p.Identity, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestPSKSession: a client with no certificate authenticates with its PSK
// over DTLS (RFC 9132 §7); its cuid is derived from the PSK identity
// (§4.4.1) and its domain is the one that lists the identity.
func TestPSKSession(t *testing.T) {
	e, logs := newPSKEnv(t)
	cl := pskClient(t, e, alphaPSK, "")
	if cl.Transport() != "dtls" {
		t.Fatalf("transport %s, want dtls", cl.Transport())
	}
	if want := dotsserver.PSKCUID(alphaPSK.Identity); cl.CUID() != want || len(want) != 22 {
		t.Fatalf("cuid %q, want %q (22 characters)", cl.CUID(), want)
	}
	expect(t, dots.Created)(cl.Mitigate(ctx(t), 1, scope("203.0.113.10/32", 3600)))
	r := expect(t, dots.Content)(cl.Status(ctx(t), dots.Ptr[uint32](1), ""))
	if sc := r.Body.MitigationScope.Scope[0]; sc.MID == nil || *sc.MID != 1 {
		t.Fatalf("status scope %+v: want mid 1", sc)
	}
	// The server keeps the request under the PSK cuid, in alpha's domain.
	all := e.Srv.Service().AllMitigations()
	if len(all) != 1 || all[0].CUID != cl.CUID() || all[0].Domain != "alpha" {
		t.Fatalf("service holds %+v, want one request of cuid %s in domain alpha", all, cl.CUID())
	}
	expect(t, dots.Deleted)(cl.Withdraw(ctx(t), 1))
	wantSuite(t, logs, alphaPSK.Identity)
}

// TestPSKRefused: the handshake fails for a wrong key or an unknown
// identity, and a client offering certificate suites must still present a
// certificate.
func TestPSKRefused(t *testing.T) {
	e, _ := newPSKEnv(t)
	// The right key gets a session: the refusals below are the key's.
	pskClient(t, e, alphaPSK, "")
	for _, tc := range []struct {
		name string
		psk  dotsserver.PSK
	}{
		{"wrong key", dotsserver.PSK{Identity: alphaPSK.Identity, Key: []byte("not-alpha-key-0123456789")}},
		{"beta's key for alpha's identity", dotsserver.PSK{Identity: alphaPSK.Identity, Key: betaPSK.Key}},
		{"unknown identity", dotsserver.PSK{Identity: "gamma-psk-1", Key: alphaPSK.Key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A wrong key garbles the client's Finished, which the server
			// drops as it drops any record it cannot decrypt: the
			// client's handshake times out.
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			cl, err := dialPSK(dctx, e, tc.psk, "")
			if err == nil {
				cl.Close()
				t.Fatal("PSK session established, want a failed handshake")
			}
		})
	}
	t.Run("certificate suites without a certificate", func(t *testing.T) {
		raddr, err := net.ResolveUDPAddr("udp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		dc, err := piondtls.DialWithOptions("udp", raddr, piondtls.WithRootCAs(e.roots), piondtls.WithServerName("localhost"),
			piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))
		if err != nil {
			t.Fatal(err)
		}
		defer dc.Close()
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := dc.HandshakeContext(hctx); err == nil {
			t.Fatal("handshake without a client certificate succeeded")
		}
	})
	t.Run("TLS", func(t *testing.T) {
		_, err := dotsclient.Dial(ctx(t), dotsclient.Config{Servers: []string{e.addr}, Transport: "tls",
			PSK: &dotsclient.PSK{Identity: alphaPSK.Identity, Key: alphaPSK.Key}})
		if err == nil || !strings.Contains(err.Error(), "DTLS only") {
			t.Fatalf("PSK over TLS: %v, want a refusal saying DTLS only", err)
		}
	})
}

// TestPSKAuthorization: a PSK client is held to its domain like a
// certificate client (RFC 9132 §4.4.1, RFC 8811 §2.2.1): no target outside
// its prefixes, no cuid of another client.
func TestPSKAuthorization(t *testing.T) {
	e, _ := newPSKEnv(t)
	beta := pskClient(t, e, betaPSK, "")
	expect(t, dots.Created)(beta.Mitigate(ctx(t), 7, scope("203.0.113.130/32", 3600)))
	alpha := pskClient(t, e, alphaPSK, "")
	for _, target := range []string{"203.0.113.130/32", "2001:db8:6402::1/128", "198.51.100.1/32"} {
		t.Run("target "+target, func(t *testing.T) {
			r := expect(t, dots.Forbidden)(alpha.Mitigate(ctx(t), 50, scope(target, 3600)))
			if !strings.Contains(r.Diag, target) || !strings.Contains(r.Diag, "alpha") {
				t.Fatalf("diagnostic %q does not name the target and the domain", r.Diag)
			}
		})
	}
	t.Run("beta's cuid", func(t *testing.T) {
		spoof := pskClient(t, e, alphaPSK, beta.CUID())
		wantCUIDCollision(t, expect(t, dots.Conflict)(spoof.Mitigate(ctx(t), 7, scope("203.0.113.10/32", 60))))
		wantCUIDCollision(t, expect(t, dots.Conflict)(spoof.Status(ctx(t), dots.Ptr[uint32](7), "")))
	})
	t.Run("the cuid of alpha's certificate", func(t *testing.T) {
		cert := e.client(t, "alpha", "dtls")
		expect(t, dots.Created)(cert.Mitigate(ctx(t), 9, scope("203.0.113.20/32", 3600)))
		spoof := pskClient(t, e, alphaPSK, cert.CUID())
		wantCUIDCollision(t, expect(t, dots.Conflict)(spoof.Withdraw(ctx(t), 9)))
	})
}

// TestPSKValidation: New refuses short keys and empty or duplicate
// identities.
func TestPSKValidation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		alpha, bet []dotsserver.PSK
		want       string
	}{
		{"short key", []dotsserver.PSK{{Identity: "a", Key: make([]byte, 15)}}, nil, "at least 16"},
		{"empty identity", []dotsserver.PSK{{Key: alphaPSK.Key}}, nil, "empty identity"},
		{"long identity", []dotsserver.PSK{{Identity: strings.Repeat("a", 129), Key: alphaPSK.Key}}, nil, "longer than 128"},
		{"duplicate in a domain", []dotsserver.PSK{alphaPSK, alphaPSK}, nil, `"alpha-psk-1" is also one of client domain "alpha"`},
		{"duplicate across domains", []dotsserver.PSK{alphaPSK}, []dotsserver.PSK{{Identity: alphaPSK.Identity, Key: betaPSK.Key}},
			`client domain "beta": PSK identity "alpha-psk-1" is also one of client domain "alpha"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dotstest.Domains()
			d[0].PSKs, d[1].PSKs = tc.alpha, tc.bet
			_, err := dotsserver.New(dotsserver.Options{Domains: d, Store: store.NewMemory()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestLibcoapPSK: libcoap's coap-client (OpenSSL), holding no certificate,
// authenticates with alpha's PSK (-u identity, -k key) and gets 2.01 for
// the RFC 9132 Figure 7 request under the cuid derived from the identity;
// with a wrong key or an unknown identity it gets no session.
func TestLibcoapPSK(t *testing.T) {
	requireLibcoap(t)
	e, logs := newPSKEnv(t)
	bodyFile := fig8File(t)
	cuid := dotsserver.PSKCUID(alphaPSK.Identity)
	uri := "coaps://" + e.addr + "/.well-known/dots/mitigate/cuid=" + cuid + "/mid=123"
	psk := []string{"-u", alphaPSK.Identity, "-k", string(alphaPSK.Key), "-N"}

	r := coapClient(t, append(append([]string{"-m", "put", "-t", "271", "-f", bodyFile}, psk...), uri)...).want(t, "2.01", true, true)
	if sc := r.body(t).MitigationScope.Scope[0]; sc.MID == nil || *sc.MID != 123 {
		t.Fatalf("2.01 scope %+v: want mid 123", sc)
	}
	wantSuite(t, logs, alphaPSK.Identity)
	r = coapClient(t, append(append([]string{"-m", "get"}, psk...), uri)...).want(t, "2.05", true, true)
	if sc := r.body(t).MitigationScope.Scope[0]; sc.Status == nil || *sc.Status != dots.StatusInProgress {
		t.Fatalf("2.05 scope %+v: want attack-mitigation-in-progress", sc)
	}
	// beta's target from alpha's PSK: 4.03.
	other := "coaps://" + e.addr + "/.well-known/dots/mitigate/cuid=" + cuid + "/mid=124"
	betaBody, err := dots.Encode(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope("203.0.113.130/32", 3600)}}})
	if err != nil {
		t.Fatal(err)
	}
	betaFile := filepath.Join(t.TempDir(), "beta.cbor")
	if err := os.WriteFile(betaFile, betaBody, 0o600); err != nil {
		t.Fatal(err)
	}
	r = coapClient(t, append(append([]string{"-m", "put", "-t", "271", "-f", betaFile}, psk...), other)...)
	r.want(t, "4.03", true, true)

	for _, tc := range []struct{ name, identity, key string }{
		{"wrong key", alphaPSK.Identity, "not-alpha-key-0123456789"},
		{"unknown identity", "gamma-psk-1", string(alphaPSK.Key)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := coapClientLog(t, "-m", "get", "-u", tc.identity, "-k", tc.key, "-N", uri)
			if m := libcoapResponse.FindStringSubmatch(log); m != nil {
				t.Fatalf("coap-client got a %s response, want no session\n%s", m[2], log)
			}
		})
	}
}

// coapClientLog runs coap-client and returns its log, whatever happened.
func coapClientLog(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, libcoapClient, append([]string{"-v", "6", "-B", "3"}, args...)...)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: no exit within 15 s\n%s", libcoapClient, out.String())
	}
	return out.String()
}

// TestPSKCipherSuites: a PSK handshake gets an AEAD suite or none
// (RFC 9132 §7, RFC 9325 §4.2): ECDHE-PSK with ChaCha20-Poly1305, plain PSK
// with AES-128-GCM or -CCM; the CBC suites and CCM_8 are refused.
func TestPSKCipherSuites(t *testing.T) {
	e, _ := newPSKEnv(t)
	raddr, err := net.ResolveUDPAddr("udp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		suite piondtls.CipherSuiteID
		ok    bool
	}{
		{piondtls.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, true},
		{piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, true},
		{piondtls.TLS_PSK_WITH_AES_128_CCM, true},
		{piondtls.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256, false},
		{piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256, false},
		{piondtls.TLS_PSK_WITH_AES_128_CCM_8, false},
	} {
		t.Run(tc.suite.String(), func(t *testing.T) {
			dc, err := piondtls.DialWithOptions("udp", raddr,
				piondtls.WithPSK(func([]byte) ([]byte, error) { return alphaPSK.Key, nil }),
				piondtls.WithPSKIdentityHint([]byte(alphaPSK.Identity)),
				piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
				piondtls.WithCipherSuites(tc.suite))
			if err != nil {
				t.Fatal(err)
			}
			defer dc.Close()
			hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = dc.HandshakeContext(hctx)
			if tc.ok != (err == nil) {
				t.Fatalf("handshake: %v, want success %v", err, tc.ok)
			}
		})
	}
}
