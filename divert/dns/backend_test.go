package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/store"
)

var (
	scrub4 = netip.MustParseAddr("192.0.2.80")
	scrub6 = netip.MustParseAddr("2001:db8:5c::80")
)

const (
	origWWW  = "2001:db8:6401::10 203.0.113.10"
	scrubbed = "192.0.2.80 2001:db8:5c::80"
)

func testConfig(primary string) Config {
	return Config{Timeout: 300 * time.Millisecond, Retries: 2, Backoff: 10 * time.Millisecond, Zones: []Zone{{
		Name: "svc.example", Primary: primary, KeyName: "dots-key", Secret: testSecret,
		Scrubbing: []netip.Addr{scrub4, scrub6},
		Clients: map[string][]string{
			"acme":  {"www.svc.example.", "api.svc.example.", "alias.svc.example.", "*.shop.svc.example."},
			"other": {"www.svc.example."},
		},
		ClientScrubbing: map[string][]netip.Addr{"other": {netip.MustParseAddr("192.0.2.99")}},
		Prefixes:        map[netip.Prefix][]string{netip.MustParsePrefix("203.0.113.11/32"): {"api.svc.example."}},
	}, {
		Name: "other.example.", Primary: primary, KeyName: "dots-key.", Secret: testSecret,
		Scrubbing: []netip.Addr{scrub4},
		Clients:   map[string][]string{"acme": {"*.other.example."}},
	}}}
}

type fixture struct {
	f  *fakePrimary
	st *store.Memory
	b  *Backend
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := startFake(t)
	st := store.NewMemory()
	b, err := New(testConfig(f.addr), st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{f: f, st: st, b: b}
}

func (fx *fixture) storeKeys(t *testing.T) string {
	t.Helper()
	var keys []string
	for _, bucket := range []string{BucketDiversions, BucketNames} {
		if err := fx.st.ForEach(bucket, func(k string, _ []byte) error { keys = append(keys, bucket+"/"+k); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Join(keys, " ")
}

func diversion(mid uint32, domain string, names ...string) divert.Diversion {
	return divert.Diversion{Key: divert.Key{CUID: "c1", MID: mid}, Domain: domain, FQDNs: names}
}

func TestUpdateMessage(t *testing.T) {
	from := rrsets{A: []netip.Addr{netip.MustParseAddr("203.0.113.10")}, TTLA: 300}
	to := scrubSet([]netip.Addr{scrub4, scrub6}, 30)
	m := updateMsg("svc.example.", "www.svc.example.", from, to)
	var got []string
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			h := rr.Header()
			line := fmt.Sprintf("%s %d %s %s", h.Name, h.Ttl, dns.ClassToString[h.Class], dns.TypeToString[h.Rrtype])
			got = append(got, strings.TrimSpace(line+" "+rdata(rr)))
		}
		got = append(got, "|")
	}
	want := []string{
		"www.svc.example. 0 NONE AAAA",         // prerequisite: no AAAA RRset
		"www.svc.example. 0 IN A 203.0.113.10", // prerequisite: A RRset is exactly this
		"|",
		"www.svc.example. 0 ANY A", "www.svc.example. 0 ANY AAAA",
		"www.svc.example. 30 IN A 192.0.2.80", "www.svc.example. 30 IN AAAA 2001:db8:5c::80",
		"|",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("update message:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if m.Opcode != dns.OpcodeUpdate || m.Question[0].Name != "svc.example." || m.Question[0].Qtype != dns.TypeSOA {
		t.Fatalf("header/zone section: %v", m)
	}
}

func TestApplyWithdraw(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d := diversion(1, "acme", "WWW.svc.example") // case and missing dot are normalized
	a, err := fx.b.Apply(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	wantDetail := "www.svc.example. A/AAAA -> 192.0.2.80, 2001:db8:5c::80 (was 203.0.113.10, 2001:db8:6401::10)"
	if a.Status != dots.StatusMitigated || a.Detail != wantDetail {
		t.Fatalf("applied = %+v", a)
	}
	if got := fx.f.addrs("www.svc.example."); got != scrubbed {
		t.Fatalf("diverted www = %q", got)
	}
	u := fx.f.updates[0]
	if u.IsTsig() == nil || u.IsTsig().Algorithm != dns.HmacSHA256 || fx.f.unsigned != 0 {
		t.Fatalf("update not signed with hmac-sha256: %v (unsigned %d)", u.IsTsig(), fx.f.unsigned)
	}
	if got := fx.storeKeys(t); got != "dns-diversions/c1/1 dns-names/www.svc.example." {
		t.Fatalf("store = %q", got)
	}
	// Idempotent: a second Apply sends no update.
	if a2, err := fx.b.Apply(ctx, d); err != nil || a2 != a || fx.f.updateCount() != 1 {
		t.Fatalf("re-apply: %+v %v, %d updates", a2, err, fx.f.updateCount())
	}
	if err := fx.b.Withdraw(ctx, d.Key); err != nil {
		t.Fatal(err)
	}
	if got := fx.f.addrs("www.svc.example."); got != origWWW {
		t.Fatalf("restored www = %q", got)
	}
	if got := fx.storeKeys(t); got != "" {
		t.Fatalf("store after withdraw = %q", got)
	}
	if err := fx.b.Withdraw(ctx, d.Key); err != nil {
		t.Fatalf("withdraw of an unknown key: %v", err)
	}
}

func TestApplyRefusals(t *testing.T) {
	for i, tc := range []struct {
		name   string
		d      divert.Diversion
		is     error
		status dots.Status
		text   string
	}{
		{"not owned", diversion(1, "acme", "www.svc.example.", "db.svc.example."), ErrNotOwned, 1, `check db.svc.example. (zone svc.example.): not owned by the client domain "acme"`},
		{"wildcard is strictly below", diversion(1, "acme", "shop.svc.example."), ErrNotOwned, 1, "shop.svc.example."},
		{"unknown domain", diversion(1, "nobody", "www.svc.example."), ErrNotOwned, 1, `"nobody"`},
		{"zone not updatable", diversion(1, "acme", "www.other.example."), ErrRefused, 1, "divert www.other.example. (zone other.example. at 127.0.0.1:"},
		{"cname", diversion(1, "acme", "alias.svc.example."), ErrNoAddress, 1, "CNAME to www.svc.example."},
		{"no records", diversion(1, "acme", "a.shop.svc.example."), ErrNoAddress, 1, "a.shop.svc.example."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			a, err := fx.b.Apply(context.Background(), tc.d)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("%d: err = %v, want %v containing %q", i, err, tc.is, tc.text)
			}
			if a.Status != tc.status || !strings.Contains(a.Detail, tc.text) {
				t.Fatalf("%d: applied = %+v", i, a)
			}
			if got := fx.f.addrs("www.svc.example."); got != origWWW {
				t.Fatalf("%d: www changed: %q", i, got)
			}
			if got := fx.storeKeys(t); got != "" {
				t.Fatalf("%d: store = %q", i, got)
			}
		})
	}
}

func TestNotHandled(t *testing.T) {
	fx := newFixture(t)
	a, err := fx.b.Apply(context.Background(), diversion(1, "acme", "www.example.com."))
	if err != nil || a != (divert.Applied{}) || fx.f.updateCount() != 0 {
		t.Fatalf("applied = %+v, %v", a, err)
	}
	// Handled and unhandled names together: the unhandled one is reported.
	a, err = fx.b.Apply(context.Background(), diversion(2, "acme", "www.example.com.", "api.svc.example."))
	if err != nil || a.Status != dots.StatusMitigated || !strings.HasSuffix(a.Detail, "; not in a configured zone: www.example.com.") {
		t.Fatalf("applied = %+v, %v", a, err)
	}
}

func TestPrefixMappedName(t *testing.T) {
	fx := newFixture(t)
	d := diversion(1, "acme")
	d.Prefixes = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	a, err := fx.b.Apply(context.Background(), d)
	if err != nil || a.Detail != "api.svc.example. A/AAAA -> 192.0.2.80, 2001:db8:5c::80 (was 203.0.113.11)" {
		t.Fatalf("applied = %+v, %v", a, err)
	}
}

func TestSharedNameIsReferenceCounted(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d1, d2 := diversion(1, "acme", "www.svc.example."), diversion(2, "other", "www.svc.example.")
	for _, d := range []divert.Diversion{d1, d2} {
		if a, err := fx.b.Apply(ctx, d); err != nil || a.Status != dots.StatusMitigated {
			t.Fatalf("apply %v: %+v %v", d.Key, a, err)
		}
	}
	// The second holder keeps the first one's diversion and original.
	if fx.f.updateCount() != 1 || fx.f.addrs("www.svc.example.") != scrubbed {
		t.Fatalf("%d updates, www = %q", fx.f.updateCount(), fx.f.addrs("www.svc.example."))
	}
	if err := fx.b.Withdraw(ctx, d1.Key); err != nil || fx.f.addrs("www.svc.example.") != scrubbed {
		t.Fatalf("after first withdraw: %v, www = %q", err, fx.f.addrs("www.svc.example."))
	}
	if err := fx.b.Withdraw(ctx, d2.Key); err != nil || fx.f.addrs("www.svc.example.") != origWWW {
		t.Fatalf("after second withdraw: %v, www = %q", err, fx.f.addrs("www.svc.example."))
	}
	if got := fx.storeKeys(t); got != "" {
		t.Fatalf("store = %q", got)
	}
}

func TestScopeChangeReleasesNames(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := fx.b.Apply(ctx, diversion(1, "acme", "www.svc.example.", "api.svc.example.")); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.b.Apply(ctx, diversion(1, "acme", "www.svc.example.")); err != nil {
		t.Fatal(err)
	}
	if fx.f.addrs("api.svc.example.") != "203.0.113.11" || fx.f.addrs("www.svc.example.") != scrubbed {
		t.Fatalf("api = %q, www = %q", fx.f.addrs("api.svc.example."), fx.f.addrs("www.svc.example."))
	}
	// Nothing handled any more: everything is released, status 0.
	if a, err := fx.b.Apply(ctx, diversion(1, "acme", "www.example.com.")); err != nil || a.Status != 0 {
		t.Fatalf("%+v %v", a, err)
	}
	if fx.f.addrs("www.svc.example.") != origWWW || fx.storeKeys(t) != "" {
		t.Fatalf("www = %q, store = %q", fx.f.addrs("www.svc.example."), fx.storeKeys(t))
	}
}

func TestRetries(t *testing.T) {
	t.Run("servfail then success", func(t *testing.T) {
		fx := newFixture(t)
		fx.f.failUpdates = 2
		if a, err := fx.b.Apply(context.Background(), diversion(1, "acme", "www.svc.example.")); err != nil || a.Status != 2 {
			t.Fatalf("%+v %v", a, err)
		}
		if fx.f.updateCount() != 3 {
			t.Fatalf("%d update attempts, want 3", fx.f.updateCount())
		}
	})
	t.Run("reply lost after the update landed", func(t *testing.T) {
		fx := newFixture(t)
		fx.f.dropReplies = 1
		// The retry's prerequisite fails; reading back shows it landed.
		if a, err := fx.b.Apply(context.Background(), diversion(1, "acme", "www.svc.example.")); err != nil || a.Status != 2 {
			t.Fatalf("%+v %v", a, err)
		}
	})
	t.Run("gives up, then a new instance restores", func(t *testing.T) {
		fx := newFixture(t)
		fx.f.hangUpdates = 3
		start := time.Now()
		a, err := fx.b.Apply(context.Background(), diversion(1, "acme", "www.svc.example."))
		if !errors.Is(err, ErrUnreachable) || a.Status != dots.StatusInProgress || !strings.Contains(a.Detail, "www.svc.example. failed: dns: divert www.svc.example.") {
			t.Fatalf("%+v %v", a, err)
		}
		if d := time.Since(start); d < 3*300*time.Millisecond+30*time.Millisecond || fx.f.updateCount() != 3 {
			t.Fatalf("gave up after %v and %d attempts", d, fx.f.updateCount())
		}
		// The state was stored before sending: a new backend restores
		// (here: finds the original still in place) and forgets it.
		b2, _ := New(testConfig(fx.f.addr), fx.st, nil, nil)
		if err := b2.Sync(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if fx.f.addrs("www.svc.example.") != origWWW || fx.storeKeys(t) != "" {
			t.Fatalf("www = %q, store = %q", fx.f.addrs("www.svc.example."), fx.storeKeys(t))
		}
	})
}

func TestNewInstanceOverSameStore(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d1, d2 := diversion(1, "acme", "www.svc.example."), diversion(2, "acme", "api.svc.example.")
	for _, d := range []divert.Diversion{d1, d2} {
		if _, err := fx.b.Apply(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Instance 1 is dropped without withdrawing. Instance 2 keeps d2 only.
	var mu sync.Mutex
	got := map[divert.Key]divert.Applied{}
	b2, err := New(testConfig(fx.f.addr), fx.st, nil, func(backend string, k divert.Key, a divert.Applied) {
		mu.Lock()
		defer mu.Unlock()
		got[k] = a
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Sync(ctx, []divert.Diversion{d2}); err != nil {
		t.Fatal(err)
	}
	if fx.f.addrs("www.svc.example.") != origWWW || fx.f.addrs("api.svc.example.") != "192.0.2.80 2001:db8:5c::80" {
		t.Fatalf("www = %q, api = %q", fx.f.addrs("www.svc.example."), fx.f.addrs("api.svc.example."))
	}
	if len(got) != 1 || got[d2.Key].Status != dots.StatusMitigated {
		t.Fatalf("updates = %+v", got)
	}
	if err := b2.Withdraw(ctx, d2.Key); err != nil || fx.f.addrs("api.svc.example.") != "203.0.113.11" {
		t.Fatalf("%v, api = %q", err, fx.f.addrs("api.svc.example."))
	}
}

func TestValidate(t *testing.T) {
	ok := testConfig("127.0.0.1:53")
	for i, tc := range []struct {
		mod  func(c *Config)
		want string // "" = valid
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.Zones = nil }, "zones: at least one"},
		{func(c *Config) { c.Zones[0].Name = "bad..name" }, "zones[0] (bad..name.): name"},
		{func(c *Config) { c.Zones[1].Primary = "127.0.0.1" }, "zones[1] (other.example.): primary"},
		{func(c *Config) { c.Zones[0].Secret = "!!" }, "zones[0] (svc.example.): secret: not base64"},
		{func(c *Config) { c.Zones[0].Secret = "" }, "secret: empty"},
		{func(c *Config) { c.Zones[0].KeyName = "" }, "key-name"},
		{func(c *Config) { c.Zones[1].Scrubbing = nil }, "zones[1] (other.example.): scrubbing"},
		{func(c *Config) { c.Zones[0].Clients["acme"] = []string{"www.example.com."} }, "clients[acme]: \"www.example.com.\" is not a name"},
		{func(c *Config) { c.Zones[1].Name = "SVC.example"; c.Zones[1].Clients = c.Zones[0].Clients }, "zones[1].name: zone svc.example. is also zones[0]"},
		{func(c *Config) { c.Zones[0].ClientScrubbing["x"] = nil }, "client-scrubbing[x]"},
		{func(c *Config) { c.Zones[1].Clients = nil }, "clients: no client"},
	} {
		c := testConfig("127.0.0.1:53")
		tc.mod(&c)
		err := c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%d: Validate() = %v, want %q", i, err, tc.want)
		}
	}
	if n := ok.normalized(); n.TTL != 30 || n.Retries != 2 || n.Zones[0].Name != "svc.example." || n.Zones[0].KeyName != "dots-key." {
		t.Errorf("normalized = %+v", n)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct{ content, want, err string }{
		{"xHJbMPh7WARTWXMT0ND/ieCM0hj7nHTofvfy0cOtiHQ=\n", "xHJbMPh7WARTWXMT0ND/ieCM0hj7nHTofvfy0cOtiHQ=", ""},
		{"key \"dots-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"xHJbMPh7WARTWXMT0ND/ieCM0hj7nHTofvfy0cOtiHQ=\";\n};\n", "xHJbMPh7WARTWXMT0ND/ieCM0hj7nHTofvfy0cOtiHQ=", ""},
		{"key \"k\" { algorithm hmac-md5; secret \"AAAA\"; };", "", "algorithm hmac-md5"},
		{"not base64!", "", "want a base64 secret"},
	} {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSecret(p)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%d: ReadSecret = %q, %v; want %q, %q", i, got, err, tc.want, tc.err)
		}
	}
}
