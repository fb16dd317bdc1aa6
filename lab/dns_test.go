package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNSServers starts each server, checks the zone data and an update
// through nsupdate, and checks that Stop leaves no process behind.
func TestDNSServers(t *testing.T) {
	for _, start := range []func(testing.TB, DNSOptions) *DNSServer{StartBIND, StartKnot} {
		s := start(t, DNSOptions{})
		t.Run(s.Kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, c := range []struct {
				name  string
				qtype uint16
				want  string
			}{
				{"www.svc.example.", dns.TypeA, "203.0.113.10"},
				{"www.svc.example.", dns.TypeAAAA, "2001:db8:6401::10"},
				{"api.svc.example.", dns.TypeA, "203.0.113.11"},
				{"api.svc.example.", dns.TypeAAAA, ""},
				{"www.other.example.", dns.TypeA, "198.51.100.20"},
			} {
				got, err := s.Lookup(ctx, c.name, c.qtype)
				if err != nil || strings.Join(got, " ") != c.want {
					t.Errorf("%s %s = %q, %v; want %q", c.name, dns.TypeToString[c.qtype], got, err, c.want)
				}
			}
			if err := s.Nsupdate(ctx, "zone svc.example.", "update add new.svc.example. 30 A 192.0.2.1"); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Lookup(ctx, "new.svc.example.", dns.TypeA); err != nil || strings.Join(got, " ") != "192.0.2.1" {
				t.Errorf("after nsupdate: %q, %v", got, err)
			}
			// The key may not update other.example.
			if err := s.Nsupdate(ctx, "zone other.example.", "update add new.other.example. 30 A 192.0.2.1"); err == nil {
				t.Errorf("update of other.example accepted")
			} else {
				t.Logf("other.example: %v", err)
			}
			if !s.Running() {
				t.Fatalf("pgrep does not see %s", s.Kind)
			}
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if s.Running() {
				t.Fatalf("%s still running after Stop", s.Kind)
			}
		})
	}
}
