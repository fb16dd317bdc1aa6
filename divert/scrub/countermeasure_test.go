package scrub

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
)

// TestCountermeasure: a scrubbed domain's diversion is the node's only
// while its countermeasure is scrubbing (named, or the domain's default);
// moved to another (an escalation step), it leaves the node's state.
// Scrubbing for a domain that is not scrubbed here is refused up front.
func TestCountermeasure(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	defaults := map[string]string{"alpha": "flowspec"}
	b, err := New(p.config(n.srv.URL), Options{NoPoll: true, Now: clk.now, Updates: rec.update, Measurements: rec.measure,
		DefaultCountermeasure: func(d string) string { return defaults[d] }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	with := func(cm string) divert.Diversion { d := alpha; d.Countermeasure = cm; return d }

	for _, tc := range []struct {
		cm   string
		want bool
	}{{"", false}, {"flowspec", false}, {"rtbh", false}, {"scrubbing", true}} {
		if got := b.Handles(with(tc.cm)); got != tc.want {
			t.Errorf("countermeasure %q (domain default flowspec): Handles %v, want %v", tc.cm, got, tc.want)
		}
	}
	defaults["alpha"] = ""
	if !b.Handles(with("")) {
		t.Error("no default countermeasure: a scrubbed domain is scrubbed")
	}

	if _, err := b.Apply(ctx, with("scrubbing")); err != nil {
		t.Fatal(err)
	}
	if ids := n.fake.Load().ids(); len(ids) != 1 {
		t.Fatalf("node state %v, want alpha's mitigation", ids)
	}
	if a, err := b.Apply(ctx, with("rtbh")); err != nil || a.Status != 0 {
		t.Fatalf("apply as rtbh: %+v %v", a, err)
	}
	if ids := n.fake.Load().ids(); len(ids) != 0 {
		t.Fatalf("moved to rtbh, the node still holds %v", ids)
	}

	other := alpha
	other.Domain, other.Countermeasure = "beta", "scrubbing"
	if err := b.Check(other); err == nil || !strings.Contains(err.Error(), `"beta" is not scrubbed`) {
		t.Fatalf("check scrubbing for beta: %v", err)
	}
	if err := b.Check(with("scrubbing")); err != nil {
		t.Fatalf("check scrubbing for alpha: %v", err)
	}
}
