package dotsserver_test

import (
	"context"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
)

// closedSoon reports whether c's session ends within a few seconds.
func closedSoon(c *dotsclient.Client) bool {
	select {
	case <-c.Done():
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// refused checks that name gets no session: its handshake, or over TLS
// 1.3 its first exchange, fails.
func (e *env) refused(t *testing.T, name, transport string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dotsclient.Dial(cctx, dotsclient.Config{Servers: []string{e.addr}, Certificate: e.ClientCert(t, name), RootCAs: e.roots, Transport: transport})
	if err != nil {
		return
	}
	defer c.Close()
	if r, err := c.Heartbeat(cctx, true); err == nil {
		t.Fatalf("%s has a session over %s (heartbeat %s), want it refused", name, transport, r.Code)
	}
}

// TestReload: Reload changes the client domains and the client CAs of a
// running server, over DTLS and TLS alike. A domain changed keeps its
// sessions under its new prefixes; a removed domain's sessions, even one
// that sent nothing yet, are closed; an added domain's client connects.
// Client CAs replaced by another CA close the sessions that no longer
// chain to one and refuse new ones.
func TestReload(t *testing.T) {
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1:0", nil)
			alpha, beta := e.client(t, "alpha", transport), e.client(t, "beta", transport)
			idle := e.client(t, "beta", transport) // no request: not identified yet
			expect(t, dots.Changed)(beta.Heartbeat(ctx(t), true))
			expect(t, dots.Forbidden)(alpha.Mitigate(ctx(t), 1, dots.Scope{TargetPrefix: []string{"198.51.100.1/32"}, Lifetime: dots.Ptr[int64](60)}))
			e.refused(t, "gamma", transport)

			domains := dotstest.Domains()
			domains[0].Prefixes = append(domains[0].Prefixes, netip.MustParsePrefix("198.51.100.0/24"))
			domains[1] = &dotsserver.ClientDomain{Name: "gamma", CommonNames: []string{"gamma"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
			res, err := e.Srv.Reload(dotsserver.Reloadable{Domains: domains, ClientCAs: e.roots})
			if err != nil {
				t.Fatal(err)
			}
			if res.Closed != 2 || res.Remapped != 1 {
				t.Errorf("reload: %+v, want 2 sessions closed (beta's), 1 remapped (alpha's)", res)
			}
			if !closedSoon(beta) || !closedSoon(idle) {
				t.Error("beta, removed, keeps a session")
			}
			expect(t, dots.Created)(alpha.Mitigate(ctx(t), 1, dots.Scope{TargetPrefix: []string{"198.51.100.1/32"}, Lifetime: dots.Ptr[int64](60)}))
			gamma := e.client(t, "gamma", transport)
			expect(t, dots.Created)(gamma.Mitigate(ctx(t), 1, dots.Scope{TargetPrefix: []string{"192.0.2.1/32"}, Lifetime: dots.Ptr[int64](60)}))

			// A refused reload changes nothing.
			bad := dotstest.Domains()
			bad[1].RateLimit = &dotsserver.RateLimit{RequestsPerSecond: -1}
			if _, err := e.Srv.Reload(dotsserver.Reloadable{Domains: bad, ClientCAs: e.roots}); err == nil {
				t.Fatal("a negative rate limit was accepted")
			}
			expect(t, dots.Changed)(gamma.Heartbeat(ctx(t), true))

			other, err := pki.Dev(filepath.Join(t.TempDir(), "other"), []string{"alpha"})
			if err != nil {
				t.Fatal(err)
			}
			otherCA, err := pki.LoadCertPool(other.CAPath)
			if err != nil {
				t.Fatal(err)
			}
			res, err = e.Srv.Reload(dotsserver.Reloadable{Domains: domains, ClientCAs: otherCA})
			if err != nil {
				t.Fatal(err)
			}
			if res.Closed != 2 || !closedSoon(alpha) || !closedSoon(gamma) {
				t.Errorf("reload with another CA: %+v, want alpha's and gamma's sessions closed", res)
			}
			e.refused(t, "alpha", transport)
			both := x509.NewCertPool()
			both.AppendCertsFromPEM(readPEM(t, e.dev.CAPath))
			both.AppendCertsFromPEM(readPEM(t, other.CAPath))
			if _, err := e.Srv.Reload(dotsserver.Reloadable{Domains: domains, ClientCAs: both}); err != nil {
				t.Fatal(err)
			}
			expect(t, dots.Changed)(e.client(t, "alpha", transport).Heartbeat(ctx(t), true))
		})
	}
}

func readPEM(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReloadPSK: a PSK session stays across a reload that changes its
// domain's prefixes, and is closed when its identity's key changes, after
// which the new key connects and the old one is refused.
func TestReloadPSK(t *testing.T) {
	e, _ := newPSKEnv(t)
	alpha := pskClient(t, e, alphaPSK, "")
	expect(t, dots.Changed)(alpha.Heartbeat(ctx(t), true))
	domains := func(alphaKey dotsserver.PSK) []*dotsserver.ClientDomain {
		d := dotstest.Domains()
		d[0].PSKs, d[1].PSKs = []dotsserver.PSK{alphaKey}, []dotsserver.PSK{betaPSK}
		d[0].Prefixes = append(d[0].Prefixes, netip.MustParsePrefix("198.51.100.0/24"))
		return d
	}
	res, err := e.Srv.Reload(dotsserver.Reloadable{Domains: domains(alphaPSK), ClientCAs: e.roots})
	if err != nil || res.Closed != 0 || res.Remapped != 1 {
		t.Fatalf("prefixes added: %+v %v, want alpha's session remapped", res, err)
	}
	expect(t, dots.Created)(alpha.Mitigate(ctx(t), 1, dots.Scope{TargetPrefix: []string{"198.51.100.1/32"}, Lifetime: dots.Ptr[int64](60)}))
	rotated := dotsserver.PSK{Identity: alphaPSK.Identity, Key: []byte("alpha-rotated-key-0123456789")}
	res, err = e.Srv.Reload(dotsserver.Reloadable{Domains: domains(rotated), ClientCAs: e.roots})
	if err != nil || res.Closed != 1 || !closedSoon(alpha) {
		t.Fatalf("key rotated: %+v %v, want alpha's session closed", res, err)
	}
	if c, err := dialPSK(ctx(t), e, alphaPSK, ""); err == nil {
		c.Close()
		t.Fatal("the old key still connects")
	}
	expect(t, dots.Changed)(pskClient(t, e, rotated, "").Heartbeat(ctx(t), true))
}
