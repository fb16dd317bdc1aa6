package dotsserver_test

import (
	"context"
	"crypto/x509"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/store"
)

// env is a server with a fresh PKI and the two clients alpha and beta.
type env struct {
	srv     *dotsserver.Server
	dev     *pki.DevPKI
	roots   *x509.CertPool
	st      dotsserver.Store
	addr    string
	domains []*dotsserver.ClientDomain
}

func devDomains() []*dotsserver.ClientDomain {
	return []*dotsserver.ClientDomain{
		{Name: "alpha", CommonNames: []string{"alpha"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("2001:db8:6401::/48")}},
		{Name: "beta", CommonNames: []string{"beta"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25"), netip.MustParsePrefix("2001:db8:6402::/48")}},
	}
}

func newEnv(t *testing.T, listen string, mutate func(*dotsserver.Options)) *env {
	t.Helper()
	return newEnvSeeded(t, listen, mutate, nil)
}

// newEnvSeeded is newEnv with a hook that may write to the store before the
// server loads it.
func newEnvSeeded(t *testing.T, listen string, mutate func(*dotsserver.Options), seed func(*env)) *env {
	t.Helper()
	dir := t.TempDir()
	dev, err := pki.Dev(dir, []string{"alpha", "beta", "gamma"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := pki.LoadKeyPair(dev.ServerCert, dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "levee.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dev: dev, roots: roots, st: db, domains: devDomains()}
	opts := dotsserver.Options{Listen: []string{listen}, Certificate: cert, ClientCAs: roots, Domains: e.domains, Store: db}
	if mutate != nil {
		mutate(&opts)
	}
	if seed != nil {
		seed(e)
	}
	e.srv, err = dotsserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.addr = e.srv.Addrs()[0]
	t.Cleanup(func() { e.srv.Close(); db.Close() })
	return e
}

func (e *env) client(t *testing.T, name, transport string) *dotsclient.Client {
	t.Helper()
	c := e.dev.Clients[name]
	cert, _, err := pki.LoadKeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{e.addr}, Certificate: cert, RootCAs: e.roots, Transport: transport})
	if err != nil {
		t.Fatalf("dial %s over %s: %v", name, transport, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// expect returns a checker of a client call's result: expect(t, code)(c.Call(...)).
func expect(t *testing.T, want dots.Code) func(*dotsclient.Response, error) *dotsclient.Response {
	return func(r *dotsclient.Response, err error) *dotsclient.Response {
		t.Helper()
		return checkCode(t, r, err, want)
	}
}

func checkCode(t *testing.T, r *dotsclient.Response, err error, want dots.Code) *dotsclient.Response {
	t.Helper()
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if r.Code != want {
		t.Fatalf("code %s, want %s (diag %q)", r.Code, want, r.Diag)
	}
	if r.Code >= dots.BadRequest && r.Diag == "" && r.Body == nil {
		t.Fatalf("%s without a diagnostic payload", r.Code)
	}
	return r
}

func scope(prefix string, lifetime int64) dots.Scope {
	return dots.Scope{TargetPrefix: []string{prefix}, Lifetime: dots.Ptr(lifetime)}
}

func TestLifecycleOverDTLSAndTLS(t *testing.T) {
	for _, tc := range []struct{ listen, transport, prefix string }{
		{"127.0.0.1:0", "dtls", "203.0.113.10/32"},
		{"127.0.0.1:0", "tls", "203.0.113.11/32"},
		{"[::1]:0", "dtls", "2001:db8:6401::1/128"},
		{"[::1]:0", "tls", "2001:db8:6401::2/128"},
	} {
		t.Run(tc.transport+"/"+tc.listen, func(t *testing.T) {
			e := newEnv(t, tc.listen, nil)
			c := e.client(t, "alpha", tc.transport)
			if c.Transport() != tc.transport {
				t.Fatalf("transport %s, want %s", c.Transport(), tc.transport)
			}
			r := expect(t, dots.Created)(c.Mitigate(ctx(t), 100, scope(tc.prefix, 3600)))
			sc := r.Body.MitigationScope.Scope[0]
			if *sc.MID != 100 || *sc.Lifetime != 3600 {
				t.Fatalf("response scope %+v", sc)
			}
			r = expect(t, dots.Content)(c.Status(ctx(t), dots.Ptr[uint32](100), ""))
			st := r.Body.MitigationScope.Scope[0]
			if st.Status == nil || *st.Status != dots.StatusInProgress || st.Note == "" {
				t.Fatalf("status %+v: want in-progress with a note saying no mitigator is configured", st)
			}
			expect(t, dots.Changed)(c.Mitigate(ctx(t), 100, scope(tc.prefix, 600)))
			expect(t, dots.Changed)(c.Efficacy(ctx(t), 100, scope(tc.prefix, 600), dots.AttackUnderAttack))
			expect(t, dots.Deleted)(c.Withdraw(ctx(t), 100))
			r = expect(t, dots.Content)(c.Status(ctx(t), dots.Ptr[uint32](100), ""))
			if s := *r.Body.MitigationScope.Scope[0].Status; s != dots.StatusClientWithdrawn {
				t.Fatalf("after DELETE status %s, want dots-client-withdrawn-mitigation", s)
			}
			expect(t, dots.Deleted)(c.Withdraw(ctx(t), 999))
			expect(t, dots.NotFound)(c.Status(ctx(t), dots.Ptr[uint32](999), ""))
		})
	}
}
