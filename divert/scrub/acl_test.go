package scrub

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/flowspec"
)

// TestFiltersNotScrubbed: a data-channel filter (an ACL diversion) of a
// scrubbed domain is not this backend's (Status 0): the nodes hold no
// mitigation for it, so neither a drop of everything to the ACL's
// destinations nor a mitigation left out for overlapping them.
func TestFiltersNotScrubbed(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b, err := New(p.config(n.srv.URL), Options{NoPoll: true, Now: clk.now, Updates: rec.update, Measurements: rec.measure})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	acl := divert.Diversion{Key: divert.Key{CUID: alpha.Key.CUID, ACL: "edge"}, Domain: alpha.Domain,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		Filters: []divert.Filter{{Match: flowspec.Match{Destination: netip.MustParsePrefix("203.0.113.0/24"),
			Source: netip.MustParsePrefix("192.0.2.0/24")}, Action: flowspec.Action{Kind: flowspec.Discard}}}}
	if b.Handles(acl) {
		t.Fatal("Handles an ACL diversion")
	}
	want := []string{ID(alpha.Key)}
	for _, step := range []struct {
		name string
		run  func() error
	}{
		{"sync", func() error { return b.Sync(ctx, []divert.Diversion{alpha, acl}) }},
		{"apply", func() error {
			a, err := b.Apply(ctx, acl)
			if err == nil && a.Status != 0 {
				t.Errorf("apply of the ACL: %+v, want status 0", a)
			}
			return err
		}},
	} {
		if err := step.run(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if ids := n.fake.Load().ids(); !slices.Equal(ids, want) {
			t.Fatalf("after %s the node holds %v, want %v", step.name, ids, want)
		}
	}
	if a := rec.lastApplied(alpha.Key); a.Status != dots.StatusMitigated {
		t.Fatalf("the mitigation beside the ACL: %+v", a)
	}
}
