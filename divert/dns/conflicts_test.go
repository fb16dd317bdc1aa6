package dns

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/levee-dots/levee/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// An operator changes A during the diversion: the restore puts AAAA back,
// keeps the operator's A, and records the A conflict until it is cleared.
func TestPartialRestoreKeepsConflict(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d := diversion(1, "acme", "www.svc.example.")
	if _, err := fx.b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	fx.f.set("www.svc.example.", dns.TypeA, "www.svc.example. 60 IN A 198.51.100.7") // operator's change
	err := fx.b.Withdraw(ctx, d.Key)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "restore www.svc.example.") ||
		!strings.Contains(err.Error(), "A has 198.51.100.7") || !strings.Contains(err.Error(), "other type was restored") {
		t.Fatalf("err = %v", err)
	}
	if got := fx.f.addrs("www.svc.example."); got != "198.51.100.7 2001:db8:6401::10" {
		t.Fatalf("after restore: %q, want the operator's A and the original AAAA", got)
	}
	if got := fx.storeKeys(t); got != "" {
		t.Fatalf("store = %q", got)
	}
	want := Conflict{Name: "www.svc.example.", Type: "A", Zone: "svc.example.", Diverted: []string{"192.0.2.80"},
		Found: []string{"198.51.100.7"}, Original: []string{"203.0.113.10"}, CUID: "c1", MID: 1}
	check := func(b *Backend, when string) {
		t.Helper()
		cs, err := b.Conflicts()
		if err != nil || len(cs) != 1 || cs[0].Since.IsZero() {
			t.Fatalf("%s: conflicts %+v %v", when, cs, err)
		}
		got := cs[0]
		got.Since = want.Since
		if got.String() != want.String() || got.Zone != want.Zone || got.CUID != want.CUID || got.MID != want.MID {
			t.Fatalf("%s: conflict %+v, want %+v", when, got, want)
		}
	}
	check(fx.b, "same instance")
	b2, err := New(testConfig(fx.f.addr), fx.st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(b2, "new instance")
	if err := b2.ClearConflict("www.svc.example", "aaaa"); err == nil || !strings.Contains(err.Error(), "no conflict recorded for www.svc.example. AAAA") {
		t.Fatalf("clear of a type without conflict: %v", err)
	}
	if err := b2.ClearConflict("WWW.svc.example.", "A"); err != nil {
		t.Fatal(err)
	}
	if cs, err := fx.b.Conflicts(); err != nil || len(cs) != 0 {
		t.Fatalf("after clear: %+v %v", cs, err)
	}
	if got := fx.f.addrs("www.svc.example."); got != "198.51.100.7 2001:db8:6401::10" {
		t.Fatalf("clear touched DNS: %q", got)
	}
}

// Both types changed: both are kept and both conflicts are listed; a
// clear with no type removes both.
func TestRestoreConflictBothTypes(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d := diversion(1, "acme", "www.svc.example.")
	if _, err := fx.b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	fx.f.set("www.svc.example.", dns.TypeA, "www.svc.example. 60 IN A 198.51.100.7")
	fx.f.set("www.svc.example.", dns.TypeAAAA)
	err := fx.b.Withdraw(ctx, d.Key)
	if !errors.Is(err, ErrConflict) || strings.Contains(err.Error(), "other type was restored") ||
		!strings.Contains(err.Error(), "AAAA has no record") {
		t.Fatalf("err = %v", err)
	}
	if got := fx.f.addrs("www.svc.example."); got != "198.51.100.7" {
		t.Fatalf("after restore: %q", got)
	}
	cs, _ := fx.b.Conflicts()
	if len(cs) != 2 || cs[0].Type != "A" || cs[1].Type != "AAAA" || len(cs[1].Found) != 0 {
		t.Fatalf("conflicts %+v", cs)
	}
	if err := fx.b.ClearConflict("www.svc.example.", ""); err != nil {
		t.Fatal(err)
	}
	if cs, _ := fx.b.Conflicts(); len(cs) != 0 {
		t.Fatalf("after clear: %+v", cs)
	}
}

// The operator changes AAAA between the restore's read and its AAAA swap:
// the swap's prerequisite fails, and AAAA is reported with what it holds.
func TestRestoreRaceWithOperator(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d := diversion(1, "acme", "www.svc.example.")
	if _, err := fx.b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	fx.f.set("www.svc.example.", dns.TypeA, "www.svc.example. 60 IN A 198.51.100.7")
	fx.f.mu.Lock()
	fx.f.beforeUpdate = func(f *fakePrimary, n int) {
		if n == 3 { // 1 divert, 2 the whole restore, 3 the AAAA restore
			f.rrs["www.svc.example."] = slices.DeleteFunc(f.rrs["www.svc.example."], func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeAAAA })
			f.add("www.svc.example. 60 IN AAAA 2001:db8:77::7")
		}
	}
	fx.f.mu.Unlock()
	if err := fx.b.Withdraw(ctx, d.Key); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "AAAA has 2001:db8:77::7") {
		t.Fatalf("err = %v", err)
	}
	if got := fx.f.addrs("www.svc.example."); got != "198.51.100.7 2001:db8:77::7" {
		t.Fatalf("after restore: %q", got)
	}
	cs, _ := fx.b.Conflicts()
	if len(cs) != 2 || cs[1].String() != "www.svc.example. AAAA: found 2001:db8:77::7, diverted 2001:db8:5c::80, original 2001:db8:6401::10" {
		t.Fatalf("conflicts %v", cs)
	}
	if n := fx.f.updateCount(); n != 3 {
		t.Fatalf("%d updates, want 3", n)
	}
}

// A type already back to its original (the operator restored it by hand)
// is not a conflict.
func TestRestoreTypeAlreadyOriginal(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d := diversion(1, "acme", "www.svc.example.")
	if _, err := fx.b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	fx.f.set("www.svc.example.", dns.TypeA, "www.svc.example. 300 IN A 203.0.113.10")
	if err := fx.b.Withdraw(ctx, d.Key); err != nil {
		t.Fatal(err)
	}
	if got := fx.f.addrs("www.svc.example."); got != origWWW {
		t.Fatalf("after restore: %q", got)
	}
	if cs, _ := fx.b.Conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts %+v", cs)
	}
}

// A failed restore (primary unreachable) keeps the name for a retry and
// records no conflict; the retry restores what it can.
func TestRestoreRetryAfterFailure(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	d := diversion(1, "acme", "www.svc.example.")
	if _, err := fx.b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	fx.f.set("www.svc.example.", dns.TypeA, "www.svc.example. 60 IN A 198.51.100.7")
	fx.f.mu.Lock()
	fx.f.failUpdates = 10
	fx.f.mu.Unlock()
	if err := fx.b.Withdraw(ctx, d.Key); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("withdraw with SERVFAIL: %v", err)
	}
	if cs, _ := fx.b.Conflicts(); len(cs) != 0 {
		t.Fatalf("conflicts after a failure: %+v", cs)
	}
	fx.f.mu.Lock()
	fx.f.failUpdates = 0
	fx.f.mu.Unlock()
	if err := fx.b.Withdraw(ctx, d.Key); !errors.Is(err, ErrConflict) {
		t.Fatalf("retry: %v", err)
	}
	if got := fx.f.addrs("www.svc.example."); got != "198.51.100.7 2001:db8:6401::10" {
		t.Fatalf("after retry: %q", got)
	}
	if cs, _ := fx.b.Conflicts(); len(cs) != 1 || cs[0].Type != "A" {
		t.Fatalf("conflicts %+v", cs)
	}
}

func TestClearConflictErrors(t *testing.T) {
	b, err := New(testConfig("127.0.0.1:1"), store.NewMemory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct{ name, typ, want string }{
		{"www.svc.example.", "MX", `type "MX": want A, AAAA or empty`},
		{"", "A", `"" is not a domain name`},
		{"www.svc.example.", "", "no conflict recorded for www.svc.example. A/AAAA"},
	} {
		if err := b.ClearConflict(c.name, c.typ); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d: ClearConflict(%q, %q) = %v, want %q", i, c.name, c.typ, err, c.want)
		}
	}
}

func TestIsDiversionAddr(t *testing.T) {
	b, err := New(testConfig("127.0.0.1:1"), store.NewMemory(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.80", true},        // svc.example. scrubbing
		{"2001:db8:5c::80", true},   // svc.example. scrubbing
		{"192.0.2.99", true},        // client-scrubbing of "other"
		{"::ffff:192.0.2.80", true}, // mapped form
		{"203.0.113.10", false},
		{"2001:db8:6401::10", false},
	} {
		if got := b.IsDiversionAddr(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("%d: IsDiversionAddr(%s) = %v, want %v", i, c.addr, got, c.want)
		}
	}
}
