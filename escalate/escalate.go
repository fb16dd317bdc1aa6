// Package escalate is the escalation ladder of a client domain: the
// countermeasures a mitigation moves through, gentlest first (for example
// FlowSpec, then scrubbing, then RTBH), and the rule that moves it. It is
// pure: the service feeds it what the client reported in its efficacy
// updates (RFC 9132 §4.4.3, attack-status) and what the mitigator measured
// (the mitigation status of §4.4.2), and records where each mitigation
// stands. RFC 8811 §2 leaves the choice of countermeasure to the server's
// local policy; this is that policy made explicit and visible.
//
// A mitigation moves one step up when, for Ladder.Up at its step, the
// client keeps reporting under-attack (a report made at this step counts,
// an older one does not), or its step does not hold: the status is still
// attack-mitigation-in-progress or is attack-exceeded-capability. It moves
// one step down when, for Ladder.Down at its step, the client reports
// attack-successfully-mitigated and the step holds. RTBH drops every
// packet to a target, so it is never a step for a scope that names ports
// or protocols.
package escalate

import (
	"fmt"
	"slices"
	"time"

	"github.com/levee-dots/levee/dots"
)

// Countermeasures a step may name.
const (
	FlowSpec  = "flowspec"
	Scrubbing = "scrubbing"
	RTBH      = "rtbh"
)

// Defaults for zero fields of a Ladder.
const (
	DefaultUp   = 60 * time.Second
	DefaultDown = 5 * time.Minute
)

// Ladder is one client domain's escalation ladder.
type Ladder struct {
	// Steps are countermeasures, gentlest first; each at most once.
	Steps []string `yaml:"steps"`
	// Up is how long a step must fail to stop the attack (the client keeps
	// reporting under-attack, or the step does not hold) before the next
	// step is taken (default 60 s).
	Up time.Duration `yaml:"up-after"`
	// Down is how long the client must report the attack mitigated at a
	// step before the previous step is taken again (default 5 min).
	Down time.Duration `yaml:"down-after"`
}

// Validate checks l; errors name the field.
func (l Ladder) Validate() error {
	if len(l.Steps) == 0 {
		return fmt.Errorf("steps: name at least one countermeasure (%s, %s, %s)", FlowSpec, Scrubbing, RTBH)
	}
	for i, s := range l.Steps {
		switch s {
		case FlowSpec, Scrubbing, RTBH:
		default:
			return fmt.Errorf("steps[%d]: %q is not a countermeasure: use %s, %s or %s", i, s, FlowSpec, Scrubbing, RTBH)
		}
		if slices.Index(l.Steps, s) != i {
			return fmt.Errorf("steps[%d]: %q is named twice", i, s)
		}
	}
	if l.Up < 0 {
		return fmt.Errorf("up-after: %v must not be negative", l.Up)
	}
	if l.Down < 0 {
		return fmt.Errorf("down-after: %v must not be negative", l.Down)
	}
	if l.Up > 0 && l.Up < time.Second {
		return fmt.Errorf("up-after: %v is less than 1s: a step needs time to take effect", l.Up)
	}
	if l.Down > 0 && l.Down < time.Second {
		return fmt.Errorf("down-after: %v is less than 1s: a step needs time to take effect", l.Down)
	}
	return nil
}

func (l Ladder) up() time.Duration {
	if l.Up == 0 {
		return DefaultUp
	}
	return l.Up
}

func (l Ladder) down() time.Duration {
	if l.Down == 0 {
		return DefaultDown
	}
	return l.Down
}

// Position is where a mitigation stands on its ladder.
type Position struct {
	Step  int       `json:"step"`  // index into Ladder.Steps
	Of    int       `json:"of"`    // len(Ladder.Steps) when it was set
	Kind  string    `json:"kind"`  // Ladder.Steps[Step]
	Since time.Time `json:"since"` // when the step was taken
	Why   string    `json:"why,omitempty"`
}

// Note is the position as the status note shows it.
func (p Position) Note() string {
	s := fmt.Sprintf("escalation: %s (step %d of %d) since %s", p.Kind, p.Step+1, p.Of, p.Since.UTC().Format(time.TimeOnly+" UTC"))
	if p.Why != "" {
		s += ", " + p.Why
	}
	return s
}

// Observed is what is known of a mitigation when the ladder is consulted.
type Observed struct {
	Status dots.Status // the mitigation's status as the mitigator reports it
	// Attack is the client's last attack-status, AttackAt when it was
	// last reported and AttackSince when that value was first reported
	// (zero: never).
	Attack                dots.AttackStatus
	AttackAt, AttackSince time.Time
	// Start is when the mitigation became active (a step cannot have
	// been in force before).
	Start time.Time
	// PortsOrProtocols: the scope names ports or protocols, so RTBH (which
	// cannot be limited to them) is not a step.
	PortsOrProtocols bool
}

// Start is the position of a new mitigation: the first step it may take.
func (l Ladder) Start(o Observed, now time.Time) (Position, bool) {
	i := l.next(-1, +1, o)
	if i < 0 {
		return Position{}, false
	}
	return Position{Step: i, Of: len(l.Steps), Kind: l.Steps[i], Since: now}, true
}

// Next returns the position a mitigation at p moves to at now, and whether
// it moved.
func (l Ladder) Next(p Position, o Observed, now time.Time) (Position, bool) {
	if i := slices.Index(l.Steps, p.Kind); i != p.Step || !l.eligible(i, o) {
		// The ladder changed since p was set: back to its first step.
		np, ok := l.Start(o, now)
		if !ok || np.Kind == p.Kind && np.Step == p.Step {
			return p, false
		}
		np.Why = fmt.Sprintf("the ladder no longer has %s at step %d", p.Kind, p.Step+1)
		return np, true
	}
	since := p.Since
	if o.Start.After(since) {
		since = o.Start
	}
	fresh := !o.AttackAt.Before(since) && !o.AttackAt.IsZero()
	held := now.Sub(later(since, o.AttackSince))
	at := now.Sub(since)
	move := func(i int, why string) (Position, bool) {
		return Position{Step: i, Of: len(l.Steps), Kind: l.Steps[i], Since: now,
			Why: fmt.Sprintf("%s left after %s", p.Kind, why)}, true
	}
	if up := l.next(p.Step, +1, o); up >= 0 {
		switch {
		case fresh && o.Attack == dots.AttackUnderAttack && held >= l.up():
			return move(up, fmt.Sprintf("the client reported under-attack for %s", round(held)))
		case o.Status == dots.StatusExceededCapability && at >= l.up():
			return move(up, fmt.Sprintf("attack-exceeded-capability for %s", round(at)))
		case o.Status == dots.StatusInProgress && at >= l.up():
			return move(up, fmt.Sprintf("it did not take effect in %s", round(at)))
		}
	}
	if down := l.next(p.Step, -1, o); down >= 0 && fresh && o.Attack == dots.AttackMitigated &&
		o.Status == dots.StatusMitigated && held >= l.down() {
		return move(down, fmt.Sprintf("the client reported attack-successfully-mitigated for %s", round(held)))
	}
	return p, false
}

// next is the first eligible step from i in direction dir, or -1.
func (l Ladder) next(i, dir int, o Observed) int {
	for j := i + dir; j >= 0 && j < len(l.Steps); j += dir {
		if l.eligible(j, o) {
			return j
		}
	}
	return -1
}

func (l Ladder) eligible(i int, o Observed) bool {
	return i >= 0 && i < len(l.Steps) && !(l.Steps[i] == RTBH && o.PortsOrProtocols)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }
