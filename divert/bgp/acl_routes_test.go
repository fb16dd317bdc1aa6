package bgp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/flowspec"
)

// flowsAt waits until the peer's IPv4 FlowSpec table holds one rule per
// entry of want, each rule containing its entry's texts, and nothing else.
func flowsAt(t *testing.T, p *peer, what string, want ...[]string) {
	t.Helper()
	var last []string
	waitForMsg(t, what, func() bool {
		last = p.routes(t, gbgp.RF_FS_IPv4_UC)
		if len(last) != len(want) {
			return false
		}
		left := slices.Clone(last)
		for _, w := range want {
			i := slices.IndexFunc(left, func(r string) bool {
				for _, s := range w {
					if !strings.Contains(r, s) {
						return false
					}
				}
				return true
			})
			if i < 0 {
				return false
			}
			left = slices.Delete(left, i, i+1)
		}
		return true
	}, func() string { return strings.Join(last, "\n") })
}

func waitForMsg(t *testing.T, what string, fn func() bool, msg func() string) {
	t.Helper()
	ok := false
	defer func() {
		if !ok {
			t.Logf("last seen:\n%s", msg())
		}
	}()
	waitFor(t, what, fn)
	ok = true
}

// TestACLSharesRoutes: a mitigation and an ACL asking for the same rule
// share one route, which stays while either needs it; an ACL refused for a
// destination it does not carry announces nothing; the last withdrawal
// leaves nothing on the books.
func TestACLSharesRoutes(t *testing.T) {
	p := startPeer(t, "127.0.0.56", all4...)
	b, _ := newSpeaker(t, baseConfig(p))
	ctx := context.Background()
	if err := b.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	established(t, b)
	bad := aclDiversion("beta", "bad", dropFrom("198.51.100.0/24", "192.0.2.0/24"))
	if a, err := b.Apply(ctx, bad); err == nil || a.Status != dots.StatusInProgress || !strings.Contains(a.Detail, "refused: ") {
		t.Fatalf("apply of an ACL for a destination it does not carry: %v %+v", err, a)
	}
	mit := divert.Diversion{Key: divert.Key{CUID: "beta", MID: 1}, Domain: "beta", Protocols: []uint8{17},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}
	if a, err := b.Apply(ctx, mit); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply mitigation: %v %+v", err, a)
	}
	udp := divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix("203.0.113.10/32"), Protocols: []flowspec.Range{{Lo: 17, Hi: 17}}},
		Action: flowspec.Action{Kind: flowspec.Discard}}
	acl := aclDiversion("beta", "acl1", udp, dropFrom("203.0.113.0/24", "192.0.2.0/24"))
	if a, err := b.Apply(ctx, acl); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply ACL: %v %+v", err, a)
	}
	shared := []string{"[destination: 203.0.113.10/32][protocol: ==udp]", "discard"}
	source := []string{"[destination: 203.0.113.0/24][source: 192.0.2.0/24]", "discard"}
	flowsAt(t, p, "the shared rule and the ACL's other rule", shared, source)
	if n := b.Neighbors()[0].Routes; n != 2 {
		t.Fatalf("the speaker counts %d routes for the neighbor, want 2", n)
	}
	// The mitigation goes; the ACL still needs the rule. A rule announced
	// after the withdrawal shows the withdrawal was handled.
	if err := b.Withdraw(ctx, mit.Key); err != nil {
		t.Fatal(err)
	}
	marker := aclDiversion("beta", "marker", dropFrom("203.0.113.0/24", "198.51.100.0/24"))
	if _, err := b.Apply(ctx, marker); err != nil {
		t.Fatal(err)
	}
	markerRule := []string{"[source: 198.51.100.0/24]"}
	flowsAt(t, p, "the shared rule kept for the ACL", shared, source, markerRule)
	if err := b.Withdraw(ctx, acl.Key); err != nil {
		t.Fatal(err)
	}
	flowsAt(t, p, "only the marker after the ACL went", markerRule)
	_ = b.Withdraw(ctx, marker.Key)
	flowsAt(t, p, "nothing")
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.routes)+len(b.entries)+len(b.nlri)+b.flowCount+len(b.domainRoutes) != 0 {
		t.Fatalf("left on the books: routes %v entries %v nlri %v flowCount %d domainRoutes %v", b.routes, b.entries, b.nlri, b.flowCount, b.domainRoutes)
	}
}

// TestUpdateOverBudgetStaysWithdrawable: an update that does not fit the
// FlowSpec budget announces nothing of the new version, and the routes of
// the version before stay on the books, so that Withdraw removes them
// from the router.
func TestUpdateOverBudgetStaysWithdrawable(t *testing.T) {
	p := startPeer(t, "127.0.0.57", all4...)
	cfg := baseConfig(p)
	cfg.Neighbors[0].FlowSpecBudget = 2
	b, _ := newSpeaker(t, cfg)
	ctx := context.Background()
	if err := b.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	established(t, b)
	v1 := aclDiversion("beta", "acl1", dropFrom("203.0.113.0/24", "192.0.2.0/24"))
	if a, err := b.Apply(ctx, v1); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply: %v %+v", err, a)
	}
	v2 := aclDiversion("beta", "acl1", dropFrom("203.0.113.0/24", "192.0.2.0/25"), dropFrom("203.0.113.0/24", "192.0.2.128/25"),
		synLimit("203.0.113.0/24", 20))
	a, err := b.Apply(ctx, v2)
	if err != nil || a.Status != dots.StatusExceededCapability || !strings.Contains(a.Detail, "nothing announced; the 1 routes announced before for it stay until it is withdrawn") {
		t.Fatalf("update over budget: %v %+v", err, a)
	}
	marker := aclDiversion("beta", "marker", dropFrom("203.0.113.0/24", "198.51.100.0/24"))
	if a, err := b.Apply(ctx, marker); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("marker: %v %+v", err, a)
	}
	old := []string{"[source: 192.0.2.0/24]"}
	markerRule := []string{"[source: 198.51.100.0/24]"}
	flowsAt(t, p, "the first version and the marker, nothing of the refused update", old, markerRule)
	if err := b.Withdraw(ctx, v1.Key); err != nil {
		t.Fatal(err)
	}
	flowsAt(t, p, "the first version withdrawn", markerRule)
}

// TestSharedRuleCountsOnceInBudget: a rule a mitigation already announced
// is one rule at the router when an ACL asks for it too, so it counts once
// against the neighbor's FlowSpec budget.
func TestSharedRuleCountsOnceInBudget(t *testing.T) {
	p := startPeer(t, "127.0.0.58", all4...)
	cfg := baseConfig(p)
	cfg.Neighbors[0].FlowSpecBudget = 2
	b, _ := newSpeaker(t, cfg)
	ctx := context.Background()
	if err := b.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	established(t, b)
	mit := divert.Diversion{Key: divert.Key{CUID: "beta", MID: 1}, Domain: "beta", Protocols: []uint8{17},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}
	if a, err := b.Apply(ctx, mit); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply mitigation: %v %+v", err, a)
	}
	udp := divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix("203.0.113.10/32"), Protocols: []flowspec.Range{{Lo: 17, Hi: 17}}},
		Action: flowspec.Action{Kind: flowspec.Discard}}
	acl := aclDiversion("beta", "acl1", udp, dropFrom("203.0.113.0/24", "192.0.2.0/24"))
	if a, err := b.Apply(ctx, acl); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply ACL: 2 rules at the router, within the budget of 2: %v %+v", err, a)
	}
	flowsAt(t, p, "the shared rule and the ACL's other rule", []string{"[destination: 203.0.113.10/32][protocol: ==udp]"}, []string{"[source: 192.0.2.0/24]"})
	more := aclDiversion("beta", "acl2", dropFrom("203.0.113.0/24", "198.51.100.0/24"))
	if a, _ := b.Apply(ctx, more); a.Status != dots.StatusExceededCapability || !strings.Contains(a.Detail, "3 FlowSpec rules would exceed the budget of 2") {
		t.Fatalf("a third rule: %+v, want exceeded", a)
	}
}

// TestACLOnlyToFlowSpecNeighbors: an ACL's rules go to the neighbors that
// receive flowspec, not to one that receives only rtbh, and the detail
// names only those.
func TestACLOnlyToFlowSpecNeighbors(t *testing.T) {
	rtbhOnly := startPeer(t, "127.0.0.59", all4...)
	flowOnly := startPeer(t, "127.0.0.60", all4...)
	cfg := baseConfig(rtbhOnly, flowOnly)
	cfg.Neighbors[0].Receives = []string{KindRTBH}
	cfg.Neighbors[1].Receives = []string{KindFlowSpec}
	b, _ := newSpeaker(t, cfg)
	ctx := context.Background()
	if err := b.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	established(t, b)
	a, err := b.Apply(ctx, aclDiversion("beta", "acl1", dropFrom("203.0.113.0/24", "192.0.2.0/24")))
	if err != nil || a.Status != dots.StatusMitigated || !strings.Contains(a.Detail, "-> edge2") || strings.Contains(a.Detail, "edge1") {
		t.Fatalf("apply: %v %+v, want the rule at edge2 only", err, a)
	}
	flowsAt(t, flowOnly, "the rule at the flowspec neighbor", []string{"[destination: 203.0.113.0/24][source: 192.0.2.0/24]", "discard"})
	// The export policy's decision for the rtbh neighbor: no FlowSpec.
	n := 0
	err = b.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_OUT, Name: rtbhOnly.addr, Family: gbgp.RF_FS_IPv4_UC},
		func(gbgp.NLRI, []*apiutil.Path) { n++ })
	if err != nil || n != 0 || len(rtbhOnly.routes(t, gbgp.RF_FS_IPv4_UC)) != 0 {
		t.Fatalf("the rtbh neighbor gets %d FlowSpec rules (%v)", n, err)
	}
}
