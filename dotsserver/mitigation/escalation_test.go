package mitigation_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/escalate"
)

// TestEscalateOnlyWhileDiverting: a request moves on its ladder only while
// it diverts; one the client withdrew keeps its step through its
// active-but-terminating period.
func TestEscalateOnlyWhileDiverting(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	now := time.Unix(1e9, 0)
	first := &escalate.Position{Step: 0, Of: 2, Kind: escalate.FlowSpec, Since: now}
	req := &dots.Request{Lifetime: 3600, Trigger: true, Scope: dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}}}
	for _, mid := range []uint32{1, 2} {
		if _, err := b.Put(mitigation.PutRequest{CUID: "c", MID: mid, Req: req, Prefixes: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("203.0.113.%d/32", mid))},
			Escalation: first}, now); err != nil {
			t.Fatal(err)
		}
	}
	b.Delete(mitigation.Key{CUID: "c", MID: 2}, now)
	moved := map[uint32]bool{}
	res := b.Escalate(nil, now.Add(time.Minute), func(r *mitigation.Record, now time.Time) (escalate.Position, bool) {
		moved[r.MID] = true
		return escalate.Position{Step: 1, Of: 2, Kind: escalate.Scrubbing, Since: now}, true
	})
	if !moved[1] || moved[2] {
		t.Fatalf("consulted %v, want only mid 1 (mid 2 is withdrawn)", moved)
	}
	if len(res.Activate) != 1 || res.Activate[0].MID != 1 || res.Activate[0].Escalation.Kind != escalate.Scrubbing {
		t.Fatalf("activate %+v", res.Activate)
	}
	if r, _ := b.Get(mitigation.Key{CUID: "c", MID: 1}); r.Escalation.Kind != escalate.Scrubbing || !r.AttackSince.IsZero() {
		t.Fatalf("mid 1 after the move: %+v", r)
	}
	b.Undo(res)
	if r, _ := b.Get(mitigation.Key{CUID: "c", MID: 1}); r.Escalation.Kind != escalate.FlowSpec {
		t.Fatalf("undo left %+v", r.Escalation)
	}
}
