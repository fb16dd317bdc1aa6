package scrub

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/flowspec"
	node "github.com/levee-dots/levee/scrub"
)

func aclDiversion(dst string, filters ...divert.Filter) divert.Diversion {
	return divert.Diversion{Key: divert.Key{CUID: alpha.Key.CUID, ACL: "edge"}, Domain: alpha.Domain,
		Prefixes: []netip.Prefix{netip.MustParsePrefix(dst)}, Filters: filters}
}

var dropDoc = divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix("203.0.113.0/24"),
	Source: netip.MustParsePrefix("192.0.2.0/24")}, Action: flowspec.Action{Kind: flowspec.Discard}}

// TestFiltersScrubbed: a data-channel filter of a scrubbed domain reaches
// the nodes as an ACL beside the mitigation of a target inside it (no
// overlap refusal), in the order of its filters, and is withdrawn; one the
// nodes cannot run (a destination it does not carry, an action they do not
// have) is not sent and stays in progress with the reason.
func TestFiltersScrubbed(t *testing.T) {
	rl := divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix("203.0.113.0/24"), Protocols: []flowspec.Range{{Lo: 6, Hi: 6}},
		TCPFlags: []flowspec.BitTerm{{Bits: flowspec.TCPSyn, Match: true}}}, Action: flowspec.Action{Kind: flowspec.RateLimit, RateBytes: 20}}
	accept := divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix("203.0.113.0/24"), Source: netip.MustParsePrefix("198.51.100.0/24")}, Accept: true}
	tests := []struct {
		name    string
		acl     divert.Diversion
		entries []node.Entry // nil: not sent
		why     string
	}{
		{"drop, rate-limit, accept", aclDiversion("203.0.113.0/24", dropDoc, rl, accept), []node.Entry{
			{Destinations: pfx("203.0.113.0/24"), Sources: pfx("192.0.2.0/24"), Action: node.ActionDrop},
			{Destinations: pfx("203.0.113.0/24"), Protocols: []uint8{6}, TCPFlags: []node.BitTerm{{Bits: 2, Match: true}}, Action: node.ActionRateLimit, RateBytes: 20},
			{Destinations: pfx("203.0.113.0/24"), Sources: pfx("198.51.100.0/24"), Action: node.ActionAccept}}, ""},
		{"destination not carried", aclDiversion("203.0.113.0/25", dropDoc), nil, "not one of the ACL's destinations"},
		{"redirect", aclDiversion("203.0.113.0/24", divert.Filter{Match: dropDoc.Match, Action: flowspec.Action{Kind: flowspec.RedirectVRF, RouteTarget: "65000:1"}}),
			nil, "not run on scrubbing nodes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPKI(t)
			n := p.startNode(t)
			clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
			b, err := New(p.config(n.srv.URL), Options{NoPoll: true, Now: clk.now, Updates: rec.update, Measurements: rec.measure})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()
			if !b.Handles(tc.acl) {
				t.Fatal("does not handle the ACL")
			}
			if err := b.Sync(ctx, []divert.Diversion{alpha, tc.acl}); err != nil {
				t.Fatal(err)
			}
			st := n.fake.Load().desired()
			if ids := n.fake.Load().ids(); !slices.Equal(ids, []string{ID(alpha.Key)}) {
				t.Fatalf("mitigations %v", ids)
			}
			a := rec.lastApplied(tc.acl.Key)
			if tc.entries == nil {
				if len(st.ACLs) != 0 || a.Status != dots.StatusInProgress || !strings.Contains(a.Detail, tc.why) {
					t.Fatalf("ACLs %+v, outcome %+v; want none sent and %q", st.ACLs, a, tc.why)
				}
				return
			}
			if len(st.ACLs) != 1 || st.ACLs[0].ID != "cuidA/acl/edge" || st.ACLs[0].Group != "cuidA" || a.Status != dots.StatusMitigated {
				t.Fatalf("ACLs %+v, outcome %+v", st.ACLs, a)
			}
			for i, e := range st.ACLs[0].Entries {
				want := tc.entries[i]
				want.Name = EntryName(tc.acl, i)
				if !reflectEqual(e, want) {
					t.Errorf("entry %d:\n got %+v\nwant %+v", i, e, want)
				}
			}
			if err := b.Withdraw(ctx, tc.acl.Key); err != nil {
				t.Fatal(err)
			}
			if st := n.fake.Load().desired(); len(st.ACLs) != 0 {
				t.Fatalf("after withdraw the node holds %+v", st.ACLs)
			}
		})
	}
}
