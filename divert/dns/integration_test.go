package dns

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/store"
)

// The integration tests run against real named and knotd started by lab on
// 127.0.0.1 and assert with real lookups (dig). They skip when a daemon is
// not installed (and fail when CI is set).

func labConfig(s *lab.DNSServer, secret string) Config {
	return Config{Timeout: 2 * time.Second, Retries: 1, Backoff: 100 * time.Millisecond, Zones: []Zone{{
		Name: lab.DNSZone, Primary: s.Addr, KeyName: s.KeyName, Secret: secret,
		Scrubbing: []netip.Addr{scrub4, scrub6},
		Clients:   map[string][]string{"acme": {"www.svc.example.", "api.svc.example."}, "beta": {"api.svc.example."}},
	}, {
		Name: lab.DNSOtherZone, Primary: s.Addr, KeyName: s.KeyName, Secret: secret,
		Scrubbing: []netip.Addr{scrub4},
		Clients:   map[string][]string{"acme": {"*.other.example."}},
	}}}
}

type realCase struct {
	t  *testing.T
	s  *lab.DNSServer
	st *store.Memory
	b  *Backend
}

func (c *realCase) lookup(name string, qtype uint16) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.s.Lookup(ctx, name, qtype)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.Join(got, " ")
}

// expect checks name's A and AAAA answers ("" for none).
func (c *realCase) expect(when, name, a, aaaa string) {
	c.t.Helper()
	if gotA, got6 := c.lookup(name, dns.TypeA), c.lookup(name, dns.TypeAAAA); gotA != a || got6 != aaaa {
		c.t.Fatalf("%s: %s A %q AAAA %q, want A %q AAAA %q\n%s", when, name, gotA, got6, a, aaaa, c.s.Log())
	}
}

// ttls checks the TTL of name's A and AAAA RRsets on the primary.
func (c *realCase) ttls(when, name string, want uint32) {
	c.t.Helper()
	z, _ := zoneOf(c.b.cfg.Zones, name)
	got, err := c.b.read(context.Background(), z, name)
	if err != nil || got.TTLA != want || got.TTLAAAA != want {
		c.t.Fatalf("%s: %s TTLs %d/%d, want %d (%v)", when, name, got.TTLA, got.TTLAAAA, want, err)
	}
}

func (c *realCase) storeEmpty() {
	c.t.Helper()
	for _, bucket := range []string{BucketDiversions, BucketNames} {
		_ = c.st.ForEach(bucket, func(k string, _ []byte) error {
			c.t.Errorf("store still has %s/%s", bucket, k)
			return nil
		})
	}
}

var realScenarios = []struct {
	name string
	run  func(c *realCase, ctx context.Context)
}{
	{"divert then withdraw", func(c *realCase, ctx context.Context) {
		d := diversion(1, "acme", "www.svc.example.")
		start := time.Now()
		a, err := c.b.Apply(ctx, d)
		applied := time.Since(start)
		want := "www.svc.example. A/AAAA -> 192.0.2.80, 2001:db8:5c::80 (was 203.0.113.10, 2001:db8:6401::10)"
		if err != nil || a.Status != dots.StatusMitigated || a.Detail != want {
			c.t.Fatalf("apply: %+v %v", a, err)
		}
		c.expect("diverted", "www.svc.example.", "192.0.2.80", "2001:db8:5c::80")
		c.expect("untouched", "api.svc.example.", "203.0.113.11", "")
		c.ttls("diverted", "www.svc.example.", 30)
		start = time.Now()
		if err := c.b.Withdraw(ctx, d.Key); err != nil {
			c.t.Fatal(err)
		}
		c.t.Logf("%s: apply %v, withdraw %v", c.s.Kind, applied.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		c.expect("restored", "www.svc.example.", "203.0.113.10", "2001:db8:6401::10")
		c.ttls("restored", "www.svc.example.", 300)
		c.storeEmpty()
	}},
	{"wrong TSIG secret", func(c *realCase, ctx context.Context) {
		wrong := make([]byte, 32)
		_, _ = rand.Read(wrong)
		b, err := New(labConfig(c.s, base64.StdEncoding.EncodeToString(wrong)), c.st, nil, nil)
		if err != nil {
			c.t.Fatal(err)
		}
		a, err := b.Apply(ctx, diversion(1, "acme", "www.svc.example."))
		if !errors.Is(err, ErrTSIG) || !strings.Contains(err.Error(), "BADSIG") || a.Status != dots.StatusInProgress {
			c.t.Fatalf("apply with a wrong secret: %+v %v", a, err)
		}
		c.t.Logf("%s: %v", c.s.Kind, err)
		c.expect("after wrong secret", "www.svc.example.", "203.0.113.10", "2001:db8:6401::10")
		c.storeEmpty()
	}},
	{"zone the key may not update", func(c *realCase, ctx context.Context) {
		a, err := c.b.Apply(ctx, diversion(1, "acme", "www.other.example."))
		var e *Error
		if !errors.Is(err, ErrRefused) || !errors.As(err, &e) || e.Name != "www.other.example." ||
			(e.Rcode != dns.RcodeRefused && e.Rcode != dns.RcodeNotAuth) || a.Status != dots.StatusInProgress {
			c.t.Fatalf("apply in other.example: %+v %v", a, err)
		}
		c.t.Logf("%s: %v", c.s.Kind, err)
		c.expect("after refusal", "www.other.example.", "198.51.100.20", "")
		c.storeEmpty()
	}},
	{"name the client does not own", func(c *realCase, ctx context.Context) {
		a, err := c.b.Apply(ctx, diversion(1, "beta", "api.svc.example.", "www.svc.example."))
		if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "www.svc.example.") || strings.Contains(err.Error(), "api.") {
			c.t.Fatalf("apply of a name not owned: %+v %v", a, err)
		}
		c.expect("after refusal", "www.svc.example.", "203.0.113.10", "2001:db8:6401::10")
		c.expect("after refusal", "api.svc.example.", "203.0.113.11", "")
		c.storeEmpty()
	}},
	{"operator change during the diversion", func(c *realCase, ctx context.Context) {
		path := filepath.Join(c.t.TempDir(), "levee.db")
		db, err := store.Open(path, store.Options{})
		if err != nil {
			c.t.Fatal(err)
		}
		defer func() { _ = db.Close() }()
		b, _ := New(labConfig(c.s, c.s.Secret), db, nil, nil)
		d := diversion(1, "acme", "www.svc.example.")
		if _, err := b.Apply(ctx, d); err != nil {
			c.t.Fatal(err)
		}
		if err := c.s.Nsupdate(ctx, "zone svc.example.", "update delete www.svc.example. A",
			"update add www.svc.example. 60 A 198.51.100.7"); err != nil {
			c.t.Fatal(err)
		}
		err = b.Withdraw(ctx, d.Key)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "restore www.svc.example.") ||
			!strings.Contains(err.Error(), "A has 198.51.100.7") {
			c.t.Fatalf("withdraw after an operator change: %v", err)
		}
		c.t.Logf("%s: %v", c.s.Kind, err)
		c.expect("operator's A kept, AAAA restored", "www.svc.example.", "198.51.100.7", "2001:db8:6401::10")
		want := "www.svc.example. A: found 198.51.100.7, diverted 192.0.2.80, original 203.0.113.10"
		conflicts := func(b *Backend, when string) {
			c.t.Helper()
			cs, err := b.Conflicts()
			if err != nil || len(cs) != 1 || cs[0].String() != want {
				c.t.Fatalf("%s: conflicts %v %v, want [%s]", when, cs, err, want)
			}
		}
		conflicts(b, "after withdraw")
		// A restart: a new instance over the reopened store still lists it.
		if err := db.Close(); err != nil {
			c.t.Fatal(err)
		}
		if db, err = store.Open(path, store.Options{}); err != nil {
			c.t.Fatal(err)
		}
		b2, _ := New(labConfig(c.s, c.s.Secret), db, nil, nil)
		conflicts(b2, "new instance")
		if err := b2.ClearConflict("www.svc.example.", "A"); err != nil {
			c.t.Fatal(err)
		}
		if cs, err := b2.Conflicts(); err != nil || len(cs) != 0 {
			c.t.Fatalf("after clear: %v %v", cs, err)
		}
		c.expect("after clear", "www.svc.example.", "198.51.100.7", "2001:db8:6401::10")
		if n, _ := b2.diversions(); len(n) != 0 {
			c.t.Fatalf("store still has %v", n)
		}
	}},
	{"new instance over the same store restores", func(c *realCase, ctx context.Context) {
		path := filepath.Join(c.t.TempDir(), "levee.db")
		db, err := store.Open(path, store.Options{})
		if err != nil {
			c.t.Fatal(err)
		}
		b1, _ := New(labConfig(c.s, c.s.Secret), db, nil, nil)
		d1, d2 := diversion(1, "acme", "www.svc.example."), diversion(2, "acme", "api.svc.example.")
		for _, d := range []divert.Diversion{d1, d2} {
			if a, err := b1.Apply(ctx, d); err != nil || a.Status != dots.StatusMitigated {
				c.t.Fatalf("apply: %+v %v", a, err)
			}
		}
		c.expect("diverted", "api.svc.example.", "192.0.2.80", "2001:db8:5c::80")
		// Instance 1 goes away without withdrawing; the store is reopened.
		if err := db.Close(); err != nil {
			c.t.Fatal(err)
		}
		db, err = store.Open(path, store.Options{})
		if err != nil {
			c.t.Fatal(err)
		}
		defer db.Close()
		b2, _ := New(labConfig(c.s, c.s.Secret), db, nil, nil)
		if err := b2.Withdraw(ctx, d2.Key); err != nil {
			c.t.Fatal(err)
		}
		c.expect("withdrawn by instance 2", "api.svc.example.", "203.0.113.11", "")
		c.expect("still diverted", "www.svc.example.", "192.0.2.80", "2001:db8:5c::80")
		if err := b2.Sync(ctx, nil); err != nil {
			c.t.Fatal(err)
		}
		c.expect("synced to nothing", "www.svc.example.", "203.0.113.10", "2001:db8:6401::10")
		if n, _ := b2.diversions(); len(n) != 0 {
			c.t.Fatalf("store still has %v", n)
		}
	}},
}

func TestRealServers(t *testing.T) {
	for _, srv := range []struct {
		kind  string
		start func(testing.TB, lab.DNSOptions) *lab.DNSServer
	}{{"bind", lab.StartBIND}, {"knot", lab.StartKnot}} {
		t.Run(srv.kind, func(t *testing.T) {
			t.Parallel()
			for _, sc := range realScenarios {
				t.Run(sc.name, func(t *testing.T) {
					var s *lab.DNSServer
					t.Cleanup(func() { // runs after lab's cleanup has stopped the daemon
						if s != nil && s.Running() {
							t.Errorf("%s still running after the test (pgrep)", s.Kind)
						}
					})
					s = srv.start(t, lab.DNSOptions{})
					st := store.NewMemory()
					b, err := New(labConfig(s, s.Secret), st, nil, nil)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					sc.run(&realCase{t: t, s: s, st: st, b: b}, ctx)
				})
			}
		})
	}
}
