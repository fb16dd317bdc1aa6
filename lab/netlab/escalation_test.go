//go:build linux

package netlab

import (
	"strings"
	"testing"
	"time"
)

// TestEscalationScenario: a mitigation that names no countermeasure starts
// at FlowSpec, which BIRD keeps but does not install, so the attack still
// reaches the target; the client's under-attack moves it up to scrubbing,
// where the on-ramp reaches the edge's FIB, scrubd drops every attack
// packet and counts it, and the legitimate echo returns through the
// tunnel; attack-successfully-mitigated moves it back to FlowSpec, the
// on-ramp and scrubd's filter go and the attack reaches the target again;
// the withdrawal leaves nothing in the kernels, nftables or BIRD.
func TestEscalationScenario(t *testing.T) {
	requireBIRD(t)
	res := runWith(t, RunEscalation, ScenarioOptions{Attack: 2000})
	checkScrubbed(t, res)
	e := res.Escalation
	if e == nil {
		t.Fatal("no escalation result")
	}
	for _, c := range []struct {
		what, note, head, why string
	}{
		{"first step", e.First, "escalation: flowspec (step 1 of 2)", ""},
		{"after under-attack", e.Up, "escalation: scrubbing (step 2 of 2)", "flowspec left after the client reported under-attack"},
		{"after attack-successfully-mitigated", e.Down, "escalation: flowspec (step 1 of 2)", "scrubbing left after the client reported attack-successfully-mitigated"},
	} {
		if !strings.HasPrefix(c.note, c.head) || !strings.Contains(c.note, c.why) {
			t.Errorf("%s: note %q, want %q… %q", c.what, c.note, c.head, c.why)
		}
	}
	for _, tr := range []struct {
		what string
		tr   Traffic
	}{{"at flowspec", e.FlowSpec}, {"back at flowspec", e.Again}} {
		if tr.tr.Sent != 2000 || tr.tr.Reached != tr.tr.Sent {
			t.Errorf("%s: %d of %d attack packets at the target, want all 2000", tr.what, tr.tr.Reached, tr.tr.Sent)
		}
	}
	if a := res.Attack; a.Sent != 2000 || a.PktsDropped-a.PktsBefore != 2000 {
		t.Errorf("at scrubbing: pkts-dropped %d → %d for %d packets, want +2000", a.PktsBefore, a.PktsDropped, a.Sent)
	}
	if !strings.Contains(res.EdgeRoute, "via 192.0.2.2 proto bird") {
		t.Errorf("edge route at scrubbing %q, want via the scrubber, proto bird", res.EdgeRoute)
	}
	if !e.UpTable || e.DownTable || len(e.DownReturn.Routes) != 0 {
		t.Errorf("scrubd's table holds the mitigation at scrubbing %v, after %v; return routes after %v", e.UpTable, e.DownTable, e.DownReturn.Routes)
	}
	if len(e.FlowRules) != 1 || len(e.UpFlowRules) != 0 || len(e.DownFlowRules) != 1 {
		t.Errorf("BIRD's %s: %q at flowspec, %q at scrubbing, %q back at flowspec", FlowTable, e.FlowRules, e.UpFlowRules, e.DownFlowRules)
	}
	if up := EscalationLadder().Up; e.UpTook < up || e.DownTook < EscalationLadder().Down {
		t.Errorf("moved up after %v, down after %v: before up-after/down-after %v", e.UpTook, e.DownTook, up)
	}
	if res.Took > 40*time.Second {
		t.Errorf("the scenario took %v, want under 40s", res.Took)
	}
}
