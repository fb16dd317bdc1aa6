package main

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/store"
)

// alternate starts a second server of the same provider on host, with
// the port, certificate and CA of e's server.
func alternate(t *testing.T, e *ctlEnv, host string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(e.addr)
	cert, _, err := pki.LoadKeyPair(e.srv.Dev.ServerCert, e.srv.Dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(host, port)
	s, err := dotsserver.New(dotsserver.Options{Listen: []string{addr}, Certificate: cert, ClientCAs: e.srv.Roots,
		Domains: dotstest.Domains(), Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Skipf("skipping: no second loopback address %s: %v", host, err)
	}
	t.Cleanup(s.Close)
	return addr
}

// TestAgentFollowsRedirect: redirected by its server (5.03 with a
// redirected-signal body, RFC 9132 §4.6) when it reads the session
// configuration again, the agent moves to the alternate server at once,
// over the addresses of the redirect, and serves commands there.
func TestAgentFollowsRedirect(t *testing.T) {
	e := newCtlEnvWith(t, dotstest.Options{Mutate: func(o *dotsserver.Options) { o.ConfigMaxAge = 1 }})
	alt := alternate(t, e, "127.0.0.2")
	a := startAgent(t, e)
	if err := e.srv.Srv.SetRedirect(dotsserver.Redirect{AltServer: "localhost",
		AltServerRecord: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, TTL: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, "the redirect", a.errOut, "redirected by "+e.addr+" to localhost; following it", 5*time.Second)
	waitWithin(t, "the new session", a.out, "session up over dtls to "+alt, 5*time.Second)
	contains(t, "mitigate through the agent", e.ok(t, "mitigate", "--target", "203.0.113.24/32"), "mid 1 created")
	contains(t, "agent output", a.out.String(), "served mitigate")
	if s := a.errOut.String(); strings.Contains(s, "reconnecting in") {
		t.Errorf("the agent waited before following the redirect:\n%s", s)
	}
}
