package dotsserver_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/store"
)

// TestAuthorization: a client only sees and touches its own mitigations
// and may only name targets its domain owns (RFC 9132 §4.4.1, RFC 8811 §2.2.1).
func TestAuthorization(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	alpha := e.client(t, "alpha", "dtls")
	beta := e.client(t, "beta", "tls")
	expect(t, dots.Created)(beta.Mitigate(ctx(t), 7, scope("203.0.113.130/32", 3600)))

	// alpha speaking with beta's cuid in the Uri-Path.
	betaCUID := e.dev.Clients["beta"].CUID
	spoof := e.clientWithCUID(t, "alpha", betaCUID)
	for _, tc := range []struct {
		name string
		call func() (*dotsclient.Response, error)
	}{
		{"read one", func() (*dotsclient.Response, error) { return spoof.Status(ctx(t), dots.Ptr[uint32](7), "") }},
		{"read all", func() (*dotsclient.Response, error) { return spoof.Status(ctx(t), nil, "") }},
		{"refresh", func() (*dotsclient.Response, error) { return spoof.Mitigate(ctx(t), 7, scope("203.0.113.130/32", 60)) }},
		{"delete", func() (*dotsclient.Response, error) { return spoof.Withdraw(ctx(t), 7) }},
		{"efficacy", func() (*dotsclient.Response, error) {
			return spoof.Efficacy(ctx(t), 7, scope("203.0.113.130/32", 60), dots.AttackMitigated)
		}},
	} {
		t.Run("beta cuid/"+tc.name, func(t *testing.T) {
			// beta's cuid is bound to beta's key: a cuid collision for alpha.
			wantCUIDCollision(t, expect(t, dots.Conflict)(tc.call()))
		})
	}
	t.Run("own cuid, beta's mid", func(t *testing.T) {
		expect(t, dots.NotFound)(alpha.Status(ctx(t), dots.Ptr[uint32](7), ""))
		expect(t, dots.NotFound)(alpha.Status(ctx(t), nil, ""))
		expect(t, dots.Deleted)(alpha.Withdraw(ctx(t), 7)) // always 2.02, and nothing happens to beta's
	})
	for _, target := range []string{"203.0.113.130/32", "203.0.113.128/25", "2001:db8:6402::1/128", "203.0.113.0/24", "198.51.100.1/32"} {
		t.Run("target "+target, func(t *testing.T) {
			r := expect(t, dots.Forbidden)(alpha.Mitigate(ctx(t), 50, scope(target, 3600)))
			if !strings.Contains(r.Diag, target) || !strings.Contains(r.Diag, "alpha") {
				t.Fatalf("diagnostic %q does not name the target and the domain", r.Diag)
			}
		})
	}
	t.Run("beta's request is intact", func(t *testing.T) {
		r := expect(t, dots.Content)(beta.Status(ctx(t), dots.Ptr[uint32](7), ""))
		sc := r.Body.MitigationScope.Scope[0]
		if *sc.Status != dots.StatusInProgress || *sc.Lifetime <= 3590 || sc.AttackStatus != nil {
			t.Fatalf("beta's mitigation was touched: %+v", sc)
		}
	})
	// A certificate of no domain: TestUnmappedCertificateRefused.
	t.Run("certificate from another CA", func(t *testing.T) {
		other, err := pki.Dev(t.TempDir(), []string{"alpha"})
		if err != nil {
			t.Fatal(err)
		}
		cert, _, err := pki.LoadKeyPair(other.Clients["alpha"].Cert, other.Clients["alpha"].Key)
		if err != nil {
			t.Fatal(err)
		}
		for _, transport := range []string{"dtls", "tls"} {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := dotsclient.Dial(dctx, dotsclient.Config{Servers: []string{e.addr}, Certificate: cert, RootCAs: e.roots, Transport: transport})
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				_, err = c.Status(dctx, nil, "")
				c.Close()
			}
			cancel()
			if err == nil {
				t.Fatalf("%s: a certificate from another CA got a session", transport)
			}
		}
	})
}

// clientWithCUID dials as name but puts cuid in the Uri-Path, and keeps it
// after a cuid collision (the 4.09 is the answer).
func (e *env) clientWithCUID(t *testing.T, name, cuid string) *dotsclient.Client {
	t.Helper()
	c := e.dev.Clients[name]
	cert, _, err := pki.LoadKeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := dotsclient.Dial(ctx(t), dotsclient.Config{Servers: []string{e.addr}, Certificate: cert, RootCAs: e.roots, CUID: cuid, KeepCUID: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestCUIDCollision: when the cuid derived from a certificate is already
// bound to another key, the server answers 4.09 cuid-collision; the client
// then picks its own cuid, which gets bound to its key, and is a collision
// for anybody else (RFC 9132 §4.4.1).
func TestCUIDCollision(t *testing.T) {
	e := newEnvSeeded(t, "127.0.0.1:0", nil, func(e *env) {
		// The store says alpha's derived cuid belongs to some other key.
		op := store.Op{Bucket: "cuid-bindings", Key: e.dev.Clients["alpha"].CUID, Value: []byte("another-key")}
		if err := e.st.Apply(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	})
	alpha := e.clientWithCUID(t, "alpha", e.dev.Clients["alpha"].CUID)
	wantCUIDCollision(t, expect(t, dots.Conflict)(alpha.Mitigate(ctx(t), 1, scope("203.0.113.10/32", 60))))
	own := e.clientWithCUID(t, "alpha", "alpha-chosen-cuid-00001")
	expect(t, dots.Created)(own.Mitigate(ctx(t), 1, scope("203.0.113.10/32", 60)))
	expect(t, dots.Content)(own.Status(ctx(t), dots.Ptr[uint32](1), ""))
	// For anybody else it is a collision.
	beta := e.clientWithCUID(t, "beta", "alpha-chosen-cuid-00001")
	wantCUIDCollision(t, expect(t, dots.Conflict)(beta.Status(ctx(t), nil, "")))
	wantCUIDCollision(t, expect(t, dots.Conflict)(beta.Mitigate(ctx(t), 2, scope("203.0.113.130/32", 60))))
	expect(t, dots.Content)(own.Status(ctx(t), dots.Ptr[uint32](1), ""))
}

// wantCUIDCollision checks a 4.09 body of RFC 9132 Figure 11: conflict-cause
// cuid-collision and nothing else.
func wantCUIDCollision(t *testing.T, r *dotsclient.Response) {
	t.Helper()
	if r.Body == nil || r.Body.MitigationScope == nil || len(r.Body.MitigationScope.Scope) != 1 {
		t.Fatalf("4.09 body %+v, want one scope with conflict-information", r.Body)
	}
	want := dots.ConflictInformation{ConflictCause: dots.Ptr(dots.CauseCUIDCollision)}
	if sc := r.Body.MitigationScope.Scope[0]; !reflect.DeepEqual(sc, dots.Scope{ConflictInformation: &want}) {
		t.Fatalf("4.09 scope %+v (conflict-information %+v), want conflict-cause cuid-collision only", sc, sc.ConflictInformation)
	}
}

// TestChosenCUIDPolicy: an unbound cuid that is not the derived one (and
// no collision happened) is bound only when policy.allow-chosen-cuid is
// set; otherwise 4.03 names the setting.
func TestChosenCUIDPolicy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		allow bool
		want  dots.Code
	}{
		{"forbidden by default", false, dots.Forbidden},
		{"allowed by policy", true, dots.Created},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.Policy.AllowChosenCUID = tc.allow })
			chosen := e.clientWithCUID(t, "alpha", "alpha-chosen-cuid-00002")
			r := expect(t, tc.want)(chosen.Mitigate(ctx(t), 1, scope("203.0.113.10/32", 60)))
			if !tc.allow {
				if !strings.Contains(r.Diag, "policy.allow-chosen-cuid") || !strings.Contains(r.Diag, e.dev.Clients["alpha"].CUID) {
					t.Fatalf("diagnostic %q does not name the setting and the derived cuid", r.Diag)
				}
				// Nothing was bound: beta may not have it either, and gets 4.03, not 4.09.
				expect(t, dots.Forbidden)(e.clientWithCUID(t, "beta", "alpha-chosen-cuid-00002").Status(ctx(t), nil, ""))
				return
			}
			expect(t, dots.Content)(chosen.Status(ctx(t), dots.Ptr[uint32](1), ""))
			// Bound to alpha's key: a collision for beta.
			wantCUIDCollision(t, expect(t, dots.Conflict)(e.clientWithCUID(t, "beta", "alpha-chosen-cuid-00002").Status(ctx(t), nil, "")))
			// alpha's derived cuid still works.
			expect(t, dots.NotFound)(e.client(t, "alpha", "dtls").Status(ctx(t), nil, ""))
		})
	}
}
