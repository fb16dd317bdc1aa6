// Package dotstest runs an in-process DOTS server (RFC 9132 over real DTLS and
// TLS on loopback) with a development PKI, and a fake clock for its heartbeat
// and lifetime loop, for the tests of the server, the client library and the
// CLI.
package dotstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/store"
)

// Server is a started server, its development PKI and its store.
type Server struct {
	Srv     *dotsserver.Server
	Dev     *pki.DevPKI    // under Dir/pki
	Roots   *x509.CertPool // the development CA
	Store   *store.DB      // Dir/levee.db
	Addr    string         // host:PORT of the first listener: DTLS on UDP and TLS on TCP
	Dir     string         // a temporary directory of the test
	Domains []*dotsserver.ClientDomain
}

// Domains returns the client domains of the development clients: alpha owns
// 203.0.113.0/25 and 2001:db8:6401::/48, beta 203.0.113.128/25 and
// 2001:db8:6402::/48, each by the CommonName of its certificate.
func Domains() []*dotsserver.ClientDomain {
	return []*dotsserver.ClientDomain{
		{Name: "alpha", CommonNames: []string{"alpha"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("2001:db8:6401::/48")}},
		{Name: "beta", CommonNames: []string{"beta"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25"), netip.MustParsePrefix("2001:db8:6402::/48")}},
	}
}

// Options configure Start; the zero value is a server on 127.0.0.1 with the
// clients alpha, beta and gamma (gamma has no domain).
type Options struct {
	Listen  string   // default 127.0.0.1:0
	Clients []string // client certificates to issue; default alpha, beta, gamma
	// Mutate may change the server's options before the server is created.
	Mutate func(*dotsserver.Options)
	// Seed runs after the store is open (and after Mutate), before
	// dotsserver.New loads the store; Srv and Addr are not set yet.
	Seed func(*Server)
}

// Start provisions a development PKI in Dir/pki, opens a store and starts a
// server; the server and the store are closed when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Clients == nil {
		o.Clients = []string{"alpha", "beta", "gamma"}
	}
	s := &Server{Dir: t.TempDir()}
	var err error
	s.Dev, err = pki.Dev(filepath.Join(s.Dir, "pki"), o.Clients)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := pki.LoadKeyPair(s.Dev.ServerCert, s.Dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Roots, err = pki.LoadCertPool(s.Dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Store, err = store.Open(filepath.Join(s.Dir, "levee.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Store.Close() })
	opts := dotsserver.Options{Listen: []string{o.Listen}, Certificate: cert, ClientCAs: s.Roots, Domains: Domains(), Store: s.Store}
	if o.Mutate != nil {
		o.Mutate(&opts)
	}
	s.Domains = opts.Domains
	if o.Seed != nil {
		o.Seed(s)
	}
	s.Srv, err = dotsserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Srv.Close) // runs before the store is closed
	s.Addr = s.Srv.Addrs()[0]
	return s
}

// ClientCert returns the certificate and key of the named client of the
// development PKI.
func (s *Server) ClientCert(t testing.TB, name string) tls.Certificate {
	t.Helper()
	c, ok := s.Dev.Clients[name]
	if !ok {
		t.Fatalf("dotstest: no client %q in the development PKI", name)
	}
	cert, _, err := pki.LoadKeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
