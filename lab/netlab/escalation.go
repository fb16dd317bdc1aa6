//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/escalate"
)

// EscalationLadder is client alpha's ladder in RunEscalation: FlowSpec,
// then scrubbing, each move after 2 s.
func EscalationLadder() escalate.Ladder {
	return escalate.Ladder{Steps: []string{escalate.FlowSpec, escalate.Scrubbing}, Up: 2 * time.Second, Down: 2 * time.Second}
}

// EscalationResult is what RunEscalation observed on the ladder; the
// scrubbing step's attack, echoes, on-ramp and return path are the
// ScenarioResult's Attack, Legit, EdgeRoute and Return.
type EscalationResult struct {
	Ladder escalate.Ladder
	// At the first step: the status note, BIRD's FlowTable, and the attack
	// (which the edge still forwards).
	First     string
	FlowRules []string
	FlowSpec  Traffic
	// Up: dotsd's answer to under-attack, the note once moved up and how
	// long that took from the report, whether scrubd's table held the
	// mitigation and what BIRD's FlowTable held at the scrubbing step.
	UpCode, Up  string
	UpTook      time.Duration
	UpTable     bool
	UpFlowRules []string
	UpBIRD      []string // every route and rule BIRD has from dotsd
	// Down: the same for attack-successfully-mitigated; whether scrubd's
	// table still held the mitigation, scrubd's return path, BIRD's
	// FlowTable and the attack back at the first step.
	DownCode, Down string
	DownTook       time.Duration
	DownTable      bool
	DownReturn     ReturnState
	DownFlowRules  []string
	Again          Traffic
}

// head is the start of the status note at step i.
func (e *EscalationResult) head(i int) string {
	return fmt.Sprintf("escalation: %s (step %d of %d)", e.Ladder.Steps[i], i+1, len(e.Ladder.Steps))
}

// why is the reason a move from step i gives in the note.
func (e *EscalationResult) why(i int, attack dots.AttackStatus) string {
	return fmt.Sprintf("%s left after the client reported %s", e.Ladder.Steps[i], attack)
}

// Problems lists where the escalation broke a promise.
func (e *EscalationResult) Problems(edgeRoute string) []string {
	var p []string
	add := func(ok bool, format string, args ...any) {
		if !ok {
			p = append(p, "escalation: "+fmt.Sprintf(format, args...))
		}
	}
	top := len(e.Ladder.Steps) - 1
	rule := "dst " + TargetAddr.String() + "/32"
	add(strings.HasPrefix(e.First, e.head(0)), "first status note %q, want %q…", e.First, e.head(0))
	add(len(e.FlowRules) == 1 && strings.Contains(e.FlowRules[0], rule), "at the first step BIRD's %s holds %q, want one rule with %q", FlowTable, e.FlowRules, rule)
	add(e.FlowSpec.Sent > 0 && e.FlowSpec.Reached == e.FlowSpec.Sent, "at the first step %d of %d attack packets reached the target, want all (BIRD does not install FlowSpec)", e.FlowSpec.Reached, e.FlowSpec.Sent)
	add(e.UpCode == "2.04", "efficacy under-attack answered %q, want 2.04 (Changed)", e.UpCode)
	add(strings.HasPrefix(e.Up, e.head(top)) && strings.Contains(e.Up, e.why(top-1, dots.AttackUnderAttack)), "after under-attack the note is %q, want %q… %q", e.Up, e.head(top), e.why(top-1, dots.AttackUnderAttack))
	add(e.UpTable, "at the scrubbing step nft list table netdev %s does not hold the mitigation", LabTable)
	add(len(e.UpFlowRules) == 0, "at the scrubbing step BIRD's %s still holds %q", FlowTable, e.UpFlowRules)
	add(len(e.UpBIRD) == 1 && strings.HasPrefix(e.UpBIRD[0], "master4: "+TargetAddr.String()+"/32 "),
		"at the scrubbing step BIRD has %q from dotsd, want only the on-ramp %v/32 in master4", e.UpBIRD, TargetAddr)
	add(strings.Contains(edgeRoute, "proto bird"), "at the scrubbing step the edge route %q is not BIRD's", edgeRoute)
	add(e.DownCode == "2.04", "efficacy attack-successfully-mitigated answered %q, want 2.04 (Changed)", e.DownCode)
	add(strings.HasPrefix(e.Down, e.head(0)) && strings.Contains(e.Down, e.why(1, dots.AttackMitigated)), "after attack-successfully-mitigated the note is %q, want %q… %q", e.Down, e.head(0), e.why(1, dots.AttackMitigated))
	add(!e.DownTable, "back at the first step nft list table netdev %s still holds the mitigation", LabTable)
	add(len(e.DownReturn.Routes) == 0, "back at the first step scrubd's table %d still routes %v", ReturnTable, e.DownReturn.Routes)
	add(len(e.DownFlowRules) == 1 && strings.Contains(e.DownFlowRules[0], rule), "back at the first step BIRD's %s holds %q, want the rule again", FlowTable, e.DownFlowRules)
	add(e.Again.Sent > 0 && e.Again.Reached == e.Again.Sent, "back at the first step %d of %d attack packets reached the target", e.Again.Reached, e.Again.Sent)
	return p
}

// RunEscalation runs the escalation scenario with real packets, dotsd,
// scrubd, dotsctl and BIRD (the edge router): client alpha's ladder is
// EscalationLadder, and its neighbor BIRD receives FlowSpec and the
// scrubbing on-ramp:
//
//  1. to 4. as RunScrubbing (the lab, the attack without mitigation, the
//     return path, the daemons and BGP);
//  5. dotsctl mitigate names no countermeasure: the first step, FlowSpec;
//     BIRD holds the rule in FlowTable but does not install it into the
//     kernel, so the attack still reaches the target;
//  6. dotsctl efficacy under-attack: after up-after dotsd moves it to
//     scrubbing; the on-ramp reaches the edge's FIB, scrubd drops the
//     attack (pkts-dropped grows by exactly the packets sent) and the
//     legitimate echo is answered through the tunnel;
//  7. dotsctl efficacy mitigated: after down-after back to FlowSpec; the
//     on-ramp leaves the edge's FIB, scrubd's state and table lose the
//     mitigation, and the attack reaches the target again;
//  8. withdraw: nothing left in the kernels, nftables or BIRD.
//
// Every step is reported through Logf; it cleans up as RunScrubbing does.
func RunEscalation(ctx context.Context, o ScenarioOptions) (*ScenarioResult, error) {
	if o.OnRamp != OnRampBGP || o.Restart != nil {
		return nil, errors.New("netlab: escalation: runs with OnRampBGP (BIRD at the edge) and without Restart")
	}
	l := EscalationLadder()
	return execute(ctx, o, &l)
}

// note polls the status until it is 2 with a note that starts with head
// and contains why.
func (s *scenario) note(ctx context.Context, what, head, why string) (dots.Scope, error) {
	sc, err := s.status(ctx, what, func(sc dots.Scope) bool {
		return sc.Status != nil && *sc.Status == dots.StatusMitigated && strings.HasPrefix(sc.Note, head) && strings.Contains(sc.Note, why)
	})
	if err != nil {
		return sc, fmt.Errorf("%w; note %q, want %q… %q", err, sc.Note, head, why)
	}
	return sc, nil
}

// flowRulesHeld waits (up to 10 s) until BIRD's FlowTable holds a rule
// (want) or none, and returns it.
func (s *scenario) flowRulesHeld(want bool) ([]string, error) {
	what := "a FlowSpec rule in " + FlowTable
	if !want {
		what = "no FlowSpec rule in " + FlowTable
	}
	var rules []string
	err := s.bird.WaitFor(what, 10*time.Second, func() bool { rules = s.flowRules(); return (len(rules) > 0) == want })
	return rules, err
}

// firstStep checks the first step: the note, BIRD's rule, and the attack
// still reaching the target.
func (s *scenario) firstStep(ctx context.Context) error {
	e := &EscalationResult{Ladder: *s.ladder}
	s.res.Escalation = e
	sc, err := s.note(ctx, "first step", e.head(0), "")
	e.First = sc.Note
	if err != nil {
		return err
	}
	s.step("%s status %d: note %q", s.who, s.res.MID, sc.Note)
	if e.FlowRules, err = s.flowRulesHeld(true); err != nil {
		return err
	}
	s.step("BIRD, birdc show route table %s: %s", FlowTable, strings.Join(e.FlowRules, "; "))
	s.step("BIRD holds the FlowSpec rule (flow4), which it does not install into the kernel: the edge keeps forwarding the attack")
	e.FlowSpec, err = s.direct("at the flowspec step", s.o.Attack)
	return err
}

// efficacy sends an efficacy update and reports it; it returns dotsd's
// answer and scrubd's output length before it.
func (s *scenario) efficacy(ctx context.Context, attack dots.AttackStatus, why string) (string, int, error) {
	r, ok := s.client.(Reporter)
	if !ok {
		return "", 0, fmt.Errorf("netlab: escalation: the %s cannot send efficacy updates", s.who)
	}
	mark := len(s.scrubd.Out.String())
	code, err := r.Efficacy(ctx, s.res.MID, attack)
	if err != nil {
		return code, mark, fmt.Errorf("netlab: efficacy %s: %w", attack, err)
	}
	s.step("%s efficacy %d %s → %s (%s)", s.who, s.res.MID, attack, code, why)
	return code, mark, nil
}

// escalateUp reports under-attack and waits for the move to scrubbing
// and for scrubd to get the mitigation.
func (s *scenario) escalateUp(ctx context.Context) error {
	e, began := s.res.Escalation, time.Now()
	code, mark, err := s.efficacy(ctx, dots.AttackUnderAttack, "the attack still reaches the target")
	if e.UpCode = code; err != nil {
		return err
	}
	top := len(e.Ladder.Steps) - 1
	sc, err := s.note(ctx, "moved up", e.head(top), e.why(top-1, dots.AttackUnderAttack))
	e.Up, e.UpTook = sc.Note, time.Since(began)
	if err != nil {
		return err
	}
	s.step("%v later (up-after %v): %s status %d: note %q", e.UpTook.Round(100*time.Millisecond), e.Ladder.Up, s.who, s.res.MID, sc.Note)
	if err := s.scrubdState(stateWith, mark); err != nil {
		return err
	}
	e.UpTable = s.l.labTableHolds(ctx)
	s.step("scrubd got the state with the mitigation (nft list table netdev %s %s it)", LabTable, holds(e.UpTable))
	if e.UpFlowRules, err = s.flowRulesHeld(false); err != nil {
		return err
	}
	e.UpBIRD = s.birdRoutes("all")
	s.step("BIRD, birdc show route table all protocol dotsd: %s (%s empty: the FlowSpec rule withdrawn)", strings.Join(e.UpBIRD, "; "), FlowTable)
	return nil
}

func holds(ok bool) string {
	if ok {
		return "holds"
	}
	return "does NOT hold"
}

// escalateDown reports attack-successfully-mitigated and waits for the
// move back to FlowSpec: the on-ramp gone, scrubd without the mitigation,
// BIRD's rule again and the attack at the target.
func (s *scenario) escalateDown(ctx context.Context) error {
	e, began := s.res.Escalation, time.Now()
	code, mark, err := s.efficacy(ctx, dots.AttackMitigated, "the scrubber drops the attack")
	if e.DownCode = code; err != nil {
		return err
	}
	sc, err := s.note(ctx, "moved down", e.head(0), e.why(1, dots.AttackMitigated))
	e.Down, e.DownTook = sc.Note, time.Since(began)
	if err != nil {
		return err
	}
	s.step("%v later (down-after %v): %s status %d: note %q", e.DownTook.Round(100*time.Millisecond), e.Ladder.Down, s.who, s.res.MID, sc.Note)
	if err := s.edgeRouteGone(); err != nil {
		return err
	}
	s.step("edge FIB: %v via %v withdrawn over BGP", s.div.EdgeRoute.Dst, ScrubberAddr)
	if err := s.scrubdState(stateWithout, mark); err != nil {
		return err
	}
	e.DownTable = s.l.labTableHolds(ctx)
	if e.DownReturn, err = s.l.scrubberReturn(); err != nil {
		return err
	}
	s.step("scrubd got the state without the mitigation (nft list table netdev %s %s it); scrubber: %s", LabTable, holds(e.DownTable), e.DownReturn)
	if e.DownFlowRules, err = s.flowRulesHeld(true); err != nil {
		return err
	}
	s.step("BIRD, birdc show route table %s: %s; not in the kernel: the edge forwards the attack again", FlowTable, strings.Join(e.DownFlowRules, "; "))
	e.Again, err = s.direct("back at the flowspec step", s.o.Attack)
	return err
}
