package service_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

var beta = service.Client{CUID: "cuid-beta", Domain: &service.Domain{Name: "beta",
	Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}

// filters is a backend that keeps the set of diversions applied to it
// (data-channel filters by key), and what the last Sync held.
type filters struct {
	mu     sync.Mutex
	on     map[string]divert.Diversion
	synced []string
}

func newFilters() *filters { return &filters{on: map[string]divert.Diversion{}} }

func (f *filters) Name() string { return "filters" }
func (f *filters) Apply(_ context.Context, d divert.Diversion) (divert.Applied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on[d.Key.String()] = d
	return divert.Applied{Status: dots.StatusMitigated, Detail: "ok"}, nil
}
func (f *filters) Withdraw(_ context.Context, k divert.Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.on, k.String())
	return nil
}
func (f *filters) Sync(_ context.Context, all []divert.Diversion) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = nil
	for _, d := range all {
		f.synced = append(f.synced, d.Key.String())
		f.on[d.Key.String()] = d
	}
	sort.Strings(f.synced)
	return nil
}

// acls returns the applied data-channel filters' keys, sorted.
func (f *filters) acls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, d := range f.on {
		if d.Key.ACL != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (f *filters) get(k string) divert.Diversion {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on[k]
}

func mustACLs(t *testing.T, body string) []data.ACL {
	t.Helper()
	a, err := data.DecodeACLs([]byte(body), data.Request)
	if err != nil {
		t.Fatal(err)
	}
	return a.ACL
}

func aclBody(name, activation, dst string) string {
	return `{"ietf-dots-data-channel:acls":{"acl":[{"name":"` + name + `","type":"ipv4-acl-type","activation-type":"` + activation +
		`","aces":{"ace":[{"name":"r1","matches":{"ipv4":{"destination-ipv4-network":"` + dst +
		`","source-ipv4-network":"192.0.2.0/24"}},"actions":{"forwarding":"drop"}}]}}]}}`
}

func register(t *testing.T, svc *service.Service, c service.Client) {
	t.Helper()
	if created, err := svc.RegisterDataClient(c, data.DotsClient{CUID: c.CUID}, false); err != nil || !created {
		t.Fatalf("register %s: %v %v", c.CUID, created, err)
	}
}

func dataErr(err error) string {
	var e *data.Error
	if !errors.As(err, &e) {
		if err == nil {
			return "ok"
		}
		return "not a data error: " + err.Error()
	}
	return fmt.Sprintf("%d %s", e.Status, e.Tag)
}

// TestDataRules: registration, ownership, and that a client sees only its own.
func TestDataRules(t *testing.T) {
	f := newFixture(t, service.Options{})
	svc := f.svc
	alias := func(name, prefix string) []data.Alias {
		return []data.Alias{{Name: name, TargetPrefix: []data.Prefix{{Prefix: netip.MustParsePrefix(prefix)}}}}
	}
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"alias before registration", func() error { _, err := svc.PutAliases(alpha, alias("a", "203.0.113.0/26"), false); return err }, "404 invalid-value"},
		{"register", func() error {
			_, err := svc.RegisterDataClient(alpha, data.DotsClient{CUID: alpha.CUID}, false)
			return err
		}, "ok"},
		{"register again (POST)", func() error {
			_, err := svc.RegisterDataClient(alpha, data.DotsClient{CUID: alpha.CUID}, false)
			return err
		}, "409 resource-denied"},
		{"register again (PUT)", func() error {
			_, err := svc.RegisterDataClient(alpha, data.DotsClient{CUID: alpha.CUID, CDID: "gw"}, true)
			return err
		}, "ok"},
		{"register another cuid", func() error {
			_, err := svc.RegisterDataClient(alpha, data.DotsClient{CUID: "other"}, false)
			return err
		}, "400 invalid-value"},
		{"owned alias", func() error { _, err := svc.PutAliases(alpha, alias("a", "203.0.113.0/26"), false); return err }, "ok"},
		{"alias exists", func() error { _, err := svc.PutAliases(alpha, alias("a", "203.0.113.0/26"), false); return err }, "409 resource-denied"},
		{"alias replaced (PUT)", func() error { _, err := svc.PutAliases(alpha, alias("a", "203.0.113.0/27"), true); return err }, "ok"},
		{"non-owned alias", func() error { _, err := svc.PutAliases(alpha, alias("b", "198.51.100.0/24"), false); return err }, "403 access-denied"},
		{"alias wider than the domain", func() error { _, err := svc.PutAliases(alpha, alias("b", "203.0.113.0/24"), false); return err }, "403 access-denied"},
		{"alias uri at a non-owned address", func() error {
			_, err := svc.PutAliases(alpha, []data.Alias{{Name: "u", TargetURI: []string{"https://[2001:db8:6402::1]/"}}}, false)
			return err
		}, "403 access-denied"},
		{"alias uri at an owned address", func() error {
			_, err := svc.PutAliases(alpha, []data.Alias{{Name: "u", TargetURI: []string{"https://203.0.113.7:8443/"}}}, false)
			return err
		}, "ok"},
		{"owned acl", func() error {
			_, err := svc.PutACLs(alpha, mustACLs(t, aclBody("x", "deactivate", "203.0.113.0/26")), false, service.Insert{})
			return err
		}, "ok"},
		{"non-owned acl", func() error {
			_, err := svc.PutACLs(alpha, mustACLs(t, aclBody("y", "deactivate", "198.51.100.0/24")), false, service.Insert{})
			return err
		}, "403 access-denied"},
		{"acl exists", func() error {
			_, err := svc.PutACLs(alpha, mustACLs(t, aclBody("x", "deactivate", "203.0.113.0/26")), false, service.Insert{})
			return err
		}, "409 resource-denied"},
		{"unenforceable acl", func() error {
			_, err := svc.PutACLs(alpha, mustACLs(t, `{"ietf-dots-data-channel:acls":{"acl":[{"name":"ttl","aces":{"ace":[{"name":"r","matches":{"ipv4":{"ttl":1}},"actions":{"forwarding":"drop"}}]}}]}}`), false, service.Insert{})
			return err
		}, "400 invalid-value"},
		{"beta registers", func() error {
			_, err := svc.RegisterDataClient(beta, data.DotsClient{CUID: beta.CUID}, false)
			return err
		}, "ok"},
		{"beta does not see alpha's alias", func() error { _, err := svc.Aliases(beta, "a"); return err }, "404 invalid-value"},
		{"beta does not see alpha's acl", func() error { _, err := svc.ACLs(beta, "x"); return err }, "404 invalid-value"},
		{"beta cannot delete alpha's acl", func() error { return svc.DeleteACL(beta, "x") }, "404 invalid-value"},
		{"beta cannot delete alpha's alias", func() error { return svc.DeleteAlias(beta, "a") }, "404 invalid-value"},
		{"alpha deletes its alias", func() error { return svc.DeleteAlias(alpha, "a") }, "ok"},
		{"deleted alias is gone", func() error { _, err := svc.Aliases(alpha, "a"); return err }, "404 invalid-value"},
	}
	for _, st := range steps {
		if got := dataErr(st.do()); got != st.want {
			t.Errorf("%s: got %s, want %s", st.name, got, st.want)
		}
	}
	if all, err := svc.ACLs(beta, ""); err != nil || len(all) != 0 {
		t.Errorf("beta's acls: %v %v", all, err)
	}
	if all, err := svc.ACLs(alpha, ""); err != nil || len(all) != 1 || all[0].Name != "x" {
		t.Errorf("alpha's acls: %v %v", all, err)
	}
	if dc, err := svc.DataClient(alpha); err != nil || dc.CDID != "gw" || dc.ACLs == nil {
		t.Errorf("alpha: %+v %v", dc, err)
	}
	if err := svc.UnregisterDataClient(alpha); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ACLs(alpha, ""); dataErr(err) != "404 invalid-value" {
		t.Errorf("after unregistering: %v", err)
	}
}

// TestACLActivation: immediate filters at once, activate-when-mitigating
// only while the client has an active mitigation, deactivate never.
func TestACLActivation(t *testing.T) {
	fb := newFilters()
	f := newFixture(t, service.Options{Backends: []divert.Diverter{fb}})
	register(t, f.svc, alpha)
	for _, b := range []string{aclBody("now", "immediate", "203.0.113.0/26"), aclBody("attack", "activate-when-mitigating", "203.0.113.64/26"),
		aclBody("off", "deactivate", "203.0.113.0/25")} {
		if _, err := f.svc.PutACLs(alpha, mustACLs(t, b), false, service.Insert{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the immediate filter", func() bool { return fb.acls() == "cuid-alpha/acl/now" })
	d := fb.get("cuid-alpha/acl/now")
	if len(d.Filters) != 1 || d.Filters[0].Match.Destination.String() != "203.0.113.0/26" || d.Filters[0].Match.Source.String() != "192.0.2.0/24" ||
		d.Filters[0].Action.Kind != 1 || !slices.Equal(d.Prefixes, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/26")}) {
		t.Errorf("immediate diversion %+v", d)
	}
	sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)}
	if _, err := f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: 1, Request: request(t, sc)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the attack-time filter", func() bool { return fb.acls() == "cuid-alpha/acl/attack cuid-alpha/acl/now" })
	if err := f.svc.WithdrawMitigation(alpha, 1); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(time.Hour)
	f.svc.Tick()
	waitFor(t, "the attack-time filter's withdrawal", func() bool { return fb.acls() == "cuid-alpha/acl/now" })
	// Deleting an enforced ACL withdraws it; replacing one re-applies it.
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("now", "immediate", "203.0.113.32/27")), true, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replaced filter", func() bool {
		d := fb.get("cuid-alpha/acl/now")
		return len(d.Filters) == 1 && d.Filters[0].Match.Destination.String() == "203.0.113.32/27"
	})
	if err := f.svc.DeleteACL(alpha, "now"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no filter", func() bool { return fb.acls() == "" })
}

// TestDataExpiry: entries live DataLifetime unless refreshed;
// pending-lifetime counts down in minutes.
func TestDataExpiry(t *testing.T) {
	fb := newFilters()
	f := newFixture(t, service.Options{Backends: []divert.Diverter{fb}})
	register(t, f.svc, alpha)
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("now", "immediate", "203.0.113.0/26")), false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	al := []data.Alias{{Name: "web", TargetPrefix: []data.Prefix{{Prefix: netip.MustParsePrefix("203.0.113.5/32")}}}}
	if _, err := f.svc.PutAliases(alpha, al, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the filter", func() bool { return fb.acls() == "cuid-alpha/acl/now" })
	for _, st := range []struct {
		advance time.Duration
		refresh bool
		pending int32 // -1: gone
	}{
		{0, false, 10080},
		{30 * time.Second, false, 10080},
		{time.Hour - 30*time.Second, false, 10020},
		{5 * 24 * time.Hour, true, 10080}, // refreshed by a PUT
		{10079 * time.Minute, false, 1},
		{time.Minute, false, -1},
	} {
		f.clk.Add(st.advance)
		f.svc.Tick()
		if st.refresh {
			if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("now", "immediate", "203.0.113.0/26")), true, service.Insert{}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.PutAliases(alpha, al, true); err != nil {
				t.Fatal(err)
			}
		}
		acls, _ := f.svc.ACLs(alpha, "")
		aliases, _ := f.svc.Aliases(alpha, "")
		if st.pending < 0 {
			if len(acls) != 0 || len(aliases) != 0 {
				t.Fatalf("after expiry: %v %v", acls, aliases)
			}
			continue
		}
		if len(acls) != 1 || *acls[0].PendingLifetime != st.pending || len(aliases) != 1 || *aliases[0].PendingLifetime != st.pending {
			t.Fatalf("at +%v: acls %v aliases %v, want pending-lifetime %d", st.advance, acls, aliases, st.pending)
		}
	}
	waitFor(t, "the expired filter's withdrawal", func() bool { return fb.acls() == "" })
}

func TestACLInsert(t *testing.T) {
	f := newFixture(t, service.Options{})
	register(t, f.svc, alpha)
	names := func() string {
		all, _ := f.svc.ACLs(alpha, "")
		var out []string
		for _, a := range all {
			out = append(out, a.Name)
		}
		return strings.Join(out, ",")
	}
	for _, st := range []struct {
		name    string
		replace bool
		in      service.Insert
		want    string // order, or error
	}{
		{"a", false, service.Insert{}, "a"},
		{"b", false, service.Insert{}, "a,b"},
		{"c", false, service.Insert{Where: "first"}, "c,a,b"},
		{"d", false, service.Insert{Where: "after", Point: "c"}, "c,d,a,b"},
		{"e", false, service.Insert{Where: "before", Point: "b"}, "c,d,a,e,b"},
		{"f", false, service.Insert{Where: "last"}, "c,d,a,e,b,f"},
		{"c", true, service.Insert{}, "c,d,a,e,b,f"},                           // replaced in place
		{"c", true, service.Insert{Where: "after", Point: "f"}, "d,a,e,b,f,c"}, // moved
		{"g", false, service.Insert{Where: "before", Point: "zz"}, "400 invalid-value"},
		{"g", false, service.Insert{Where: "after"}, "400 missing-attribute"},
		{"g", false, service.Insert{Where: "middle"}, "400 invalid-value"},
		{"g", false, service.Insert{Where: "first", Point: "a"}, "400 invalid-value"},
	} {
		_, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody(st.name, "deactivate", "203.0.113.0/26")), st.replace, st.in)
		got := names()
		if err != nil {
			got = dataErr(err)
		}
		if got != st.want {
			t.Errorf("%s %+v: got %s, want %s", st.name, st.in, got, st.want)
		}
	}
}

// TestDataRestart: data-channel state survives a restart and the backends'
// Sync set holds the enforced ACLs.
func TestDataRestart(t *testing.T) {
	st := store.NewMemory()
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	open := func(fb *filters) *service.Service {
		svc, err := service.New(service.Options{Store: st, Now: clk.Now, Backends: []divert.Diverter{fb}})
		if err != nil {
			t.Fatal(err)
		}
		svc.Start()
		return svc
	}
	fb := newFilters()
	svc := open(fb)
	register(t, svc, alpha)
	for _, b := range []string{aclBody("now", "immediate", "203.0.113.0/26"), aclBody("attack", "activate-when-mitigating", "203.0.113.64/26")} {
		if _, err := svc.PutACLs(alpha, mustACLs(t, b), false, service.Insert{}); err != nil {
			t.Fatal(err)
		}
	}
	svc.Close()
	clk.Add(time.Hour)
	fb2 := newFilters()
	svc2 := open(fb2)
	defer svc2.Close()
	waitFor(t, "the sync", func() bool { fb2.mu.Lock(); defer fb2.mu.Unlock(); return len(fb2.synced) > 0 })
	fb2.mu.Lock()
	synced := strings.Join(fb2.synced, " ")
	fb2.mu.Unlock()
	if synced != "cuid-alpha/acl/now" {
		t.Errorf("synced %q, want the immediate ACL only", synced)
	}
	acls, err := svc2.ACLs(alpha, "")
	if err != nil || len(acls) != 2 || acls[0].Name != "now" || *acls[0].PendingLifetime != 10020 {
		t.Errorf("restored acls %+v %v", acls, err)
	}
}

// TestAliasExpansion: alias-name in a mitigation request adds the alias's
// targets (RFC 9132 §4.4.1); an unknown alias is 4.00 naming it.
func TestAliasExpansion(t *testing.T) {
	rec := &recorder{}
	f := newFixture(t, service.Options{Backends: []divert.Diverter{rec}})
	register(t, f.svc, alpha)
	up := uint16(443)
	al := []data.Alias{{Name: "web", TargetPrefix: []data.Prefix{{Prefix: netip.MustParsePrefix("203.0.113.5/32")}},
		TargetPortRange: []data.PortRange{{LowerPort: 80, UpperPort: &up}}, TargetProtocol: []data.Protocol{6}}}
	if _, err := f.svc.PutAliases(alpha, al, false); err != nil {
		t.Fatal(err)
	}
	put := func(mid uint32, names ...string) (*service.PutResult, error) {
		sc := dots.Scope{AliasName: names, Lifetime: dots.Ptr[int64](3600)}
		return f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: mid, Request: request(t, sc)})
	}
	if _, err := put(1, "nope"); codeOf(err) != dots.BadRequest || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown alias: %v", err)
	}
	res, err := put(2, "web")
	if err != nil {
		t.Fatal(err)
	}
	m := res.Mitigation
	if res.Code != dots.Created || !slices.Equal(m.Prefixes, []netip.Prefix{netip.MustParsePrefix("203.0.113.5/32")}) ||
		!slices.Equal(m.Scope.TargetProtocol, []uint32{6}) || len(m.Scope.TargetPortRange) != 1 {
		t.Fatalf("expanded %+v", m)
	}
	waitFor(t, "the diversion", func() bool { return strings.Contains(rec.log(), "apply cuid-alpha/2") })
	if res, err := put(2, "web"); err != nil || res.Code != dots.Changed {
		t.Fatalf("refresh: %v %v", res, err)
	}
	// An alias with a target outside the domain cannot exist, so the
	// ownership check of the expanded targets is the alias's own.
	if _, err := f.svc.PutAliases(beta, al, false); dataErr(err) != "403 access-denied" {
		t.Errorf("beta's alias: %v", err)
	}
}

// TestACLStatistics: statistics come only from a backend's counters.
func TestACLStatistics(t *testing.T) {
	fb := newFilters()
	f := newFixture(t, service.Options{Backends: []divert.Diverter{fb}})
	register(t, f.svc, alpha)
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("now", "immediate", "203.0.113.0/26")), false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	acls, _ := f.svc.ACLs(alpha, "now")
	if acls[0].ACEs.ACE[0].Statistics != nil {
		t.Fatalf("statistics without any measurement: %+v", acls[0].ACEs.ACE[0].Statistics)
	}
	k := divert.Key{CUID: alpha.CUID, ACL: "now"}
	f.svc.Measured("filters", k, divert.Counters{BytesDropped: 1500, PktsDropped: 3})
	f.svc.Measured("filters", k, divert.Counters{BytesDropped: 100, PktsDropped: 1}) // counter reset
	acls, _ = f.svc.ACLs(alpha, "now")
	s := acls[0].ACEs.ACE[0].Statistics
	if s == nil || *s.MatchedPackets != 4 || *s.MatchedOctets != 1600 {
		t.Fatalf("statistics %+v", s)
	}
}

// TestACLControl: RFC 9133 acl-list in a mitigation request switches an
// ACL's activation during an attack; 4.00 in idle time, 4.04 for an
// unknown ACL, 5.03 naming the update when it cannot be stored.
func TestACLControl(t *testing.T) {
	fb := newFilters()
	f := newFixture(t, service.Options{Backends: []divert.Diverter{fb}})
	register(t, f.svc, alpha)
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("accept-list", "deactivate", "203.0.113.0/26")), false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	put := func(mid uint32, efficacy bool, acls ...dots.ACLControl) error {
		sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600), ACLList: acls}
		if efficacy {
			sc.AttackStatus = dots.Ptr(dots.AttackUnderAttack)
		}
		_, err := f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: mid, Request: request(t, sc), Efficacy: efficacy})
		return err
	}
	immediate := dots.ActivationType(2)
	ctl := func(name string, a *dots.ActivationType) dots.ACLControl {
		return dots.ACLControl{ACLName: name, ActivationType: a}
	}
	if err := put(1, false, ctl("accept-list", &immediate)); codeOf(err) != dots.BadRequest || !strings.Contains(err.Error(), "only allowed while a mitigation is active") {
		t.Fatalf("idle time: %v", err)
	}
	if err := put(1, false); err != nil {
		t.Fatal(err)
	}
	if err := put(2, false, ctl("nope", &immediate)); codeOf(err) != dots.NotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown acl: %v", err)
	}
	if err := put(1, true, ctl("accept-list", &immediate)); codeOf(err) != dots.BadRequest {
		t.Fatalf("efficacy update with acl-list: %v", err)
	}
	f.clk.Add(24 * time.Hour)
	if err := put(2, false, ctl("accept-list", &immediate)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the switched filter", func() bool { return fb.acls() == "cuid-alpha/acl/accept-list" })
	acls, _ := f.svc.ACLs(alpha, "accept-list")
	if acls[0].Activation() != data.Immediate || *acls[0].PendingLifetime != 10080 {
		t.Errorf("after the switch: %v, pending-lifetime %d (refreshed: 10080)", acls[0].Activation(), *acls[0].PendingLifetime)
	}
	// The new activation type outlives the mitigation.
	for _, mid := range []uint32{1, 2} {
		if err := f.svc.WithdrawMitigation(alpha, mid); err != nil {
			t.Fatal(err)
		}
	}
	f.clk.Add(time.Hour)
	f.svc.Tick()
	if acls, _ := f.svc.ACLs(alpha, "accept-list"); acls[0].Activation() != data.Immediate {
		t.Errorf("after the mitigation: %v", acls[0].Activation())
	}
	// A failed write: 5.03 with the update in the diagnostic, nothing changed.
	if err := put(3, false); err != nil {
		t.Fatal(err)
	}
	deactivate := dots.ActivationType(3)
	f.st.fail.Store(true)
	err := put(4, false, ctl("accept-list", &deactivate))
	f.st.fail.Store(false)
	if codeOf(err) != dots.ServiceUnavailable || !strings.Contains(err.Error(), `"ietf-dots-signal-control:acl-list":[{"acl-name":"accept-list","activation-type":"deactivate"}]`) {
		t.Fatalf("failed write: %v", err)
	}
	if acls, _ := f.svc.ACLs(alpha, "accept-list"); acls[0].Activation() != data.Immediate {
		t.Errorf("after the failed write: %v", acls[0].Activation())
	}
}

// refuser is a backend whose policy refuses every ACL.
type refuser struct{ filters }

func (r *refuser) Check(d divert.Diversion) error {
	if d.Key.ACL != "" {
		return errors.New("no filters here")
	}
	return nil
}

func TestACLBackendCheck(t *testing.T) {
	r := &refuser{filters: filters{on: map[string]divert.Diversion{}}}
	f := newFixture(t, service.Options{Backends: []divert.Diverter{r}})
	register(t, f.svc, alpha)
	_, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("off", "deactivate", "203.0.113.0/26")), false, service.Insert{})
	if dataErr(err) != "403 access-denied" || !strings.Contains(err.Error(), "no filters here") {
		t.Fatalf("refused acl: %v", err)
	}
	if acls, _ := f.svc.ACLs(alpha, ""); len(acls) != 0 {
		t.Errorf("a refused acl is kept: %v", acls)
	}
}

// TestACLStatisticsPerACE: a backend that counts each filter
// (Counters.Matched) gives each ACE of a multi-ACE ACL its own statistics,
// carried over a device counter reset; one that counts only the ACL as a
// whole gives none for such an ACL.
func TestACLStatisticsPerACE(t *testing.T) {
	fb := newFilters()
	f := newFixture(t, service.Options{Backends: []divert.Diverter{fb}})
	register(t, f.svc, alpha)
	body := `{"ietf-dots-data-channel:acls":{"acl":[{"name":"two","type":"ipv4-acl-type","activation-type":"immediate",
		"aces":{"ace":[
		{"name":"syn","matches":{"ipv4":{"destination-ipv4-network":"203.0.113.0/26","source-ipv4-network":"192.0.2.0/24"}},"actions":{"forwarding":"drop"}},
		{"name":"udp","matches":{"ipv4":{"destination-ipv4-network":"203.0.113.64/26","protocol":17}},"actions":{"forwarding":"drop"}}]}}]}}`
	acls := mustACLs(t, body)
	fs, err := service.Filters(&acls[0], nil)
	if err != nil || len(fs) != 2 {
		t.Fatalf("filters of the ACL: %d, %v; the test wants one per ACE", len(fs), err)
	}
	if _, err := f.svc.PutACLs(alpha, acls, false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	k := divert.Key{CUID: alpha.CUID, ACL: "two"}
	stats := func() (out []string) {
		got, _ := f.svc.ACLs(alpha, "two")
		for _, e := range got[0].ACEs.ACE {
			if e.Statistics == nil {
				out = append(out, e.Name+":-")
				continue
			}
			out = append(out, fmt.Sprintf("%s:%d/%d", e.Name, *e.Statistics.MatchedPackets, *e.Statistics.MatchedOctets))
		}
		return out
	}
	f.svc.Measured("whole", k, divert.Counters{BytesDropped: 900, PktsDropped: 9})
	if got := stats(); !slices.Equal(got, []string{"syn:-", "udp:-"}) {
		t.Fatalf("a whole-ACL count split over two ACEs: %v", got)
	}
	f.svc.Measured("filters", k, divert.Counters{BytesDropped: 700, PktsDropped: 7,
		Matched: []divert.FilterCount{{Packets: 3, Bytes: 300}, {Packets: 4, Bytes: 400}}})
	f.svc.Measured("filters", k, divert.Counters{BytesDropped: 150, PktsDropped: 2, // reset
		Matched: []divert.FilterCount{{Packets: 1, Bytes: 100}, {Packets: 1, Bytes: 50}}})
	if got := stats(); !slices.Equal(got, []string{"syn:4/400", "udp:5/450"}) {
		t.Fatalf("per-ACE statistics %v, want syn:4/400 udp:5/450", got)
	}
}
