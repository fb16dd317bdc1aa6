package bgp

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
)

// TestSharedNLRI: the scrubbing on-ramp and the RTBH route of one target
// are the same unicast NLRI. One mitigation moving from one to the other
// (an escalation step) leaves the new route at the peer, not a withdrawal;
// of two mitigations holding the NLRI with different routes, the one that
// stays is announced again when the other goes.
func TestSharedNLRI(t *testing.T) {
	p := startPeer(t, "127.0.0.41", all4...)
	cfg := baseConfig(p)
	cfg.Scrubbing = Scrubbing{NextHopV4: "198.51.100.1"}
	b, _ := newSpeaker(t, cfg)
	ctx := context.Background()
	if err := b.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "neighbor up", func() bool { return b.Neighbors()[0].Established })
	target := []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}
	d := func(mid uint32, kind string) divert.Diversion {
		return divert.Diversion{Key: divert.Key{CUID: "alpha", MID: mid}, Domain: "alpha", Prefixes: target, Countermeasure: kind}
	}
	holds := func(what, nh string, blackhole bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			r := p.routes(t, gbgp.RF_IPv4_UC)
			return len(r) == 1 && strings.Contains(r[0], "nh "+nh) && strings.Contains(r[0], "blackhole") == blackhole
		})
	}
	apply := func(d divert.Diversion) {
		t.Helper()
		if _, err := b.Apply(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	apply(d(1, KindScrubbing))
	holds("on-ramp", "198.51.100.1", false)
	apply(d(1, KindRTBH))
	holds("on-ramp replaced by rtbh", "192.0.2.1", true)
	apply(d(1, KindScrubbing))
	holds("rtbh replaced by the on-ramp", "198.51.100.1", false)

	apply(d(2, KindRTBH)) // a second mitigation of the same target
	holds("the later route", "192.0.2.1", true)
	if err := b.Withdraw(ctx, d(2, "").Key); err != nil {
		t.Fatal(err)
	}
	holds("mid 1's on-ramp again", "198.51.100.1", false)
	if err := b.Withdraw(ctx, d(1, "").Key); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nothing left", func() bool { return len(p.routes(t, gbgp.RF_IPv4_UC)) == 0 })
	if len(b.nlri) != 0 {
		t.Fatalf("the NLRI index keeps %v", b.nlri)
	}
}
