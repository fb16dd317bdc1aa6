package resolve

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/lab"
)

// TestRealBIND resolves names served by a real named (started by lab on
// 127.0.0.1): addresses and TTLs, a CNAME, NXDOMAIN, a diverted name, and
// named stopped.
func TestRealBIND(t *testing.T) {
	s := lab.StartBIND(t, lab.DNSOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clk := &clock{t: time.Now()}
	scrub := addrs("192.0.2.80", "2001:db8:5c::80")
	r := New(Options{Servers: []string{s.Addr}, Timeout: 500 * time.Millisecond, Now: clk.now,
		Exclude: func(a netip.Addr) bool { return slices.Contains(scrub, a) }})
	want := addrs("203.0.113.10", "2001:db8:6401::10")

	start := time.Now()
	a, err := r.Lookup(ctx, "www.svc.example")
	took := time.Since(start)
	if err != nil || !slices.Equal(a.Addrs, want) || a.TTL != 300*time.Second || a.Server != s.Addr || a.Stale {
		t.Fatalf("www: %+v %v", a, err)
	}
	start = time.Now()
	if _, _, err := r.Resolve(ctx, "www.svc.example"); err != nil {
		t.Fatal(err)
	}
	cached := time.Since(start)
	var lat []time.Duration
	for i := 0; i < 50; i++ {
		clk.add(301 * time.Second) // expired: asked again
		start := time.Now()
		if _, _, err := r.Resolve(ctx, "www.svc.example"); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("resolve www.svc.example. (A+AAAA) against named: first %v, median %v, p95 %v of 50; from the cache %v",
		took.Round(10*time.Microsecond), lat[25].Round(10*time.Microsecond), lat[47].Round(10*time.Microsecond),
		cached.Round(time.Microsecond))

	if _, _, err := r.Resolve(ctx, "nothere.svc.example."); !errors.Is(err, ErrNotFound) ||
		!strings.Contains(err.Error(), "nothere.svc.example.: the name does not exist") {
		t.Fatalf("NXDOMAIN: %v", err)
	}
	if err := s.Nsupdate(ctx, "zone svc.example.", "update add alias.svc.example. 40 CNAME api.svc.example."); err != nil {
		t.Fatal(err)
	}
	if got, ttl, err := r.Resolve(ctx, "alias.svc.example."); err != nil || !slices.Equal(got, addrs("203.0.113.11")) || ttl != 40*time.Second {
		t.Fatalf("CNAME: %v %v %v", got, ttl, err)
	}
	if _, _, err := r.Resolve(ctx, "www.elsewhere.example."); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "REFUSED") {
		t.Fatalf("outside the server's zones: %v", err)
	}

	// The name is diverted: named now has only the scrubbing addresses.
	if err := s.Nsupdate(ctx, "zone svc.example.", "update delete www.svc.example. A", "update delete www.svc.example. AAAA",
		"update add www.svc.example. 30 A 192.0.2.80", "update add www.svc.example. 30 AAAA 2001:db8:5c::80"); err != nil {
		t.Fatal(err)
	}
	clk.add(301 * time.Second)
	a, err = r.Lookup(ctx, "www.svc.example")
	if err != nil || !slices.Equal(a.Addrs, want) || !a.Stale || a.TTL != DefaultStaleTTL || !errors.Is(a.Err, ErrExcluded) {
		t.Fatalf("diverted: %+v %v", a, err)
	}

	// named goes away: the last good answer, no error.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	start = time.Now()
	a, err = r.Lookup(ctx, "alias.svc.example")
	if err != nil || !slices.Equal(a.Addrs, addrs("203.0.113.11")) || !a.Stale || !errors.Is(a.Err, ErrUnreachable) {
		t.Fatalf("named stopped: %+v %v", a, err)
	}
	t.Logf("named stopped: stale answer after %v: %v", time.Since(start).Round(time.Millisecond), a.Err)
}
