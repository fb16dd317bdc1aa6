package dotsserver_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
)

// env is a dotstest server (clients alpha, beta and gamma; domains for alpha
// and beta) under the short names the tests of this package use.
type env struct {
	*dotstest.Server
	dev   *pki.DevPKI
	roots *x509.CertPool
	st    dotsserver.Store
	addr  string
}

func newEnv(t testing.TB, listen string, mutate func(*dotsserver.Options)) *env {
	t.Helper()
	return newEnvSeeded(t, listen, mutate, nil)
}

// newEnvSeeded is newEnv with a hook that may write to the store before the
// server loads it.
func newEnvSeeded(t testing.TB, listen string, mutate func(*dotsserver.Options), seed func(*env)) *env {
	t.Helper()
	o := dotstest.Options{Listen: listen, Mutate: mutate}
	if seed != nil {
		o.Seed = func(s *dotstest.Server) { seed(wrapEnv(s)) }
	}
	return wrapEnv(dotstest.Start(t, o))
}

func wrapEnv(s *dotstest.Server) *env {
	return &env{Server: s, dev: s.Dev, roots: s.Roots, st: s.Store, addr: s.Addr}
}

func (e *env) client(t testing.TB, name, transport string) *dotsclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{e.addr}, Certificate: e.ClientCert(t, name), RootCAs: e.roots, Transport: transport})
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

// TestLargeListBlockwise: a status list larger than one datagram comes back
// whole (Block2, RFC 7959) over DTLS and over TLS.
func TestLargeListBlockwise(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			c := e.client(t, "beta", transport)
			base := map[string]uint32{"dtls": 1000, "tls": 2000}[transport]
			for i := uint32(0); i < 60; i++ {
				sc := dots.Scope{TargetPrefix: []string{fmt.Sprintf("2001:db8:6402::%x:%x/128", base, i+1)}, Lifetime: dots.Ptr[int64](3600)}
				expect(t, dots.Created)(c.Mitigate(ctx(t), base+i, sc))
			}
			r := expect(t, dots.Content)(c.Status(ctx(t), nil, ""))
			if n := len(r.Body.MitigationScope.Scope); n < 60 {
				t.Fatalf("GET all returned %d entries, want at least 60", n)
			}
			if b := len(dots.MustEncode(r.Body)); b <= 1024 {
				t.Fatalf("the list is %d bytes: too small to need Block2", b)
			}
			if len(r.ETag) == 0 {
				t.Fatal("a status answer (dynamic content, sent in blocks) carries no ETag")
			}
		})
	}
}
