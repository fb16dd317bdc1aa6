package metrics_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/divert/dns"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/metrics"
	"github.com/levee-dots/levee/store"
)

// TestDNS diverts names on real primaries on loopback: each dynamic update
// is counted by zone, and what fails in a zone the key may not update:
// BIND answers the read and refuses the update, Knot refuses the key for
// the zone outright (the read fails, no update is sent).
func TestDNS(t *testing.T) {
	for _, tc := range []struct {
		server                         string
		start                          func(testing.TB, lab.DNSOptions) *lab.DNSServer
		updates, failures, readFailure float64 // in DNSOtherZone
	}{
		{"bind", lab.StartBIND, 1, 1, 0},
		{"knot", lab.StartKnot, 0, 0, 1},
	} {
		t.Run(tc.server, func(t *testing.T) {
			s := tc.start(t, lab.DNSOptions{})
			zone := func(name string, names ...string) dns.Zone {
				return dns.Zone{Name: name, Primary: s.Addr, KeyName: s.KeyName, Secret: s.Secret,
					Scrubbing: []netip.Addr{netip.MustParseAddr("192.0.2.80")}, Clients: map[string][]string{"alpha": names}}
			}
			b, err := dns.New(dns.Config{Timeout: 2 * time.Second, Retries: 1, Backoff: 100 * time.Millisecond, Zones: []dns.Zone{
				zone(lab.DNSZone, "www.svc.example.", "api.svc.example."), zone(lab.DNSOtherZone, "www.other.example.")}}, store.NewMemory(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			m := metrics.New(metrics.Options{})
			if err := m.Register(metrics.NewDNSCollector(b)); err != nil {
				t.Fatal(err)
			}
			reg := m.Registry()
			if _, ok := sample(t, reg, "levee_dns_updates_total", map[string]string{"zone": lab.DNSZone}); ok {
				t.Fatal("updates counted before any was sent")
			}
			d := divert.Diversion{Key: divert.Key{CUID: "alpha", MID: 1}, Domain: "alpha", FQDNs: []string{"www.svc.example.", "api.svc.example."}}
			if _, err := b.Apply(context.Background(), d); err != nil {
				t.Fatalf("apply: %v", err)
			}
			if err := b.Withdraw(context.Background(), d.Key); err != nil {
				t.Fatalf("withdraw: %v", err)
			}
			refused := divert.Diversion{Key: divert.Key{CUID: "alpha", MID: 2}, Domain: "alpha", FQDNs: []string{"www.other.example."}}
			if _, err := b.Apply(context.Background(), refused); err == nil {
				t.Fatal("a diversion in a zone the key may not update succeeded")
			}
			svc, other := map[string]string{"zone": lab.DNSZone}, map[string]string{"zone": lab.DNSOtherZone}
			for _, c := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"levee_dns_updates_total", svc, 4}, // two names diverted, two restored
				{"levee_dns_update_failures_total", svc, 0},
				{"levee_dns_read_failures_total", svc, 0},
				{"levee_dns_updates_total", other, tc.updates},
				{"levee_dns_update_failures_total", other, tc.failures},
				{"levee_dns_read_failures_total", other, tc.readFailure},
			} {
				if got, _ := sample(t, reg, c.name, c.labels); got != c.want {
					t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			lint(t, reg)
		})
	}
}
