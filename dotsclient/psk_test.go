package dotsclient

import (
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

var testPSK = PSK{Identity: "alpha-psk-1", Key: []byte("alpha-secret-key-0123456789")}

// TestPSKConfigErrors: Dial refuses a PSK it cannot use before it sends
// anything.
func TestPSKConfigErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"short key", Config{PSK: &PSK{Identity: "a", Key: make([]byte, 15)}}, "15 bytes, at least 16"},
		{"empty identity", Config{PSK: &PSK{Key: testPSK.Key}}, "identity is empty"},
		{"with a certificate", Config{PSK: &testPSK, Certificate: e.ClientCert(t, "alpha")}, "not both"},
		{"over TLS", Config{PSK: &testPSK, Transport: "tls"}, "DTLS only"},
		{"neither", Config{}, "a client certificate is required (or a PSK)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Servers = []string{e.addr}
			_, err := Dial(timeout(t, 5*time.Second), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Dial: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestPSKNoTLSFallback: with UDP blocked, a PSK client fails instead of
// trying TLS (Go's TLS has no external PSKs); a certificate client falls
// back to TLS through the same front.
func TestPSKNoTLSFallback(t *testing.T) {
	e := newTestEnv(t, func(o *dotsserver.Options) {
		o.Domains = dotstest.Domains()
		o.Domains[0].PSKs = []dotsserver.PSK{{Identity: testPSK.Identity, Key: testPSK.Key}}
	})
	// The PSK reaches the server over DTLS.
	c, err := Dial(timeout(t, 5*time.Second), Config{Servers: []string{e.addr}, PSK: &testPSK})
	if err != nil {
		t.Fatalf("PSK dial: %v", err)
	}
	if c.Transport() != "dtls" || c.CUID() != PSKCUID(testPSK.Identity) {
		t.Fatalf("session over %s as %s, want dtls as %s", c.Transport(), c.CUID(), PSKCUID(testPSK.Identity))
	}
	c.Close()

	front := newUDPBlockedFront(t, e.addr)
	_, err = Dial(timeout(t, 2*time.Second), Config{Servers: []string{front.addr}, PSK: &testPSK, AttemptDelay: 10 * time.Millisecond})
	if err == nil {
		t.Fatal("PSK dial through a UDP-blocking front succeeded")
	}
	if n := front.proxied.Load(); n != 0 {
		t.Fatalf("PSK client opened %d TCP connections, want none", n)
	}
	cfg := e.config(t, "alpha", front.addr)
	cfg.ServerName = "localhost"
	cfg.AttemptDelay = 10 * time.Millisecond
	c, err = Dial(timeout(t, 5*time.Second), cfg)
	if err != nil {
		t.Fatalf("certificate dial through the front: %v", err)
	}
	if c.Transport() != "tls" {
		t.Fatalf("certificate client over %s, want the TLS fallback", c.Transport())
	}
	c.Close()
}
