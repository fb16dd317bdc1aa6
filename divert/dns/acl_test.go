package dns

import (
	"context"
	"net/netip"
	"testing"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/flowspec"
)

// TestFiltersNotDiverted: a data-channel filter (an ACL diversion) diverts
// no name, not even the names the configuration maps to its destinations:
// an ACL filters traffic, it does not send it to the scrubbing centre.
func TestFiltersNotDiverted(t *testing.T) {
	fx := newFixture(t)
	dst := netip.MustParsePrefix("203.0.113.0/24") // holds 203.0.113.11, mapped to api.svc.example.
	d := divert.Diversion{Key: divert.Key{CUID: "c1", ACL: "edge"}, Domain: "acme", Prefixes: []netip.Prefix{dst},
		Filters: []divert.Filter{{Match: flowspec.Match{Destination: dst, Source: netip.MustParsePrefix("192.0.2.0/24")},
			Action: flowspec.Action{Kind: flowspec.Discard}}}}
	if fx.b.Handles(d) {
		t.Fatal("Handles an ACL diversion")
	}
	if err := fx.b.Check(d); err != nil {
		t.Fatalf("Check: %v", err)
	}
	a, err := fx.b.Apply(context.Background(), d)
	if err != nil || a != (divert.Applied{}) || fx.f.updateCount() != 0 {
		t.Fatalf("applied = %+v, %v; %d updates sent", a, err, fx.f.updateCount())
	}
	if keys := fx.storeKeys(t); keys != "" {
		t.Fatalf("stored %s", keys)
	}
}
