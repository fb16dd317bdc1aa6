package agent

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/levee-dots/levee/scrub"
)

// Bounds limit what one PUT /v1/state may ask of the node. Zero fields take
// the defaults below.
type Bounds struct {
	MaxMitigations int   // default 10000
	MaxTargets     int   // per mitigation, default 1024
	MaxRules       int   // per mitigation, default 64
	MaxBodyBytes   int64 // size of a request body, default 8 MiB
}

// Defaults of Bounds.
const (
	DefaultMaxMitigations       = 10000
	DefaultMaxTargets           = 1024
	DefaultMaxRules             = 64
	DefaultMaxBodyBytes   int64 = 8 << 20
)

func (b Bounds) normalized() Bounds {
	if b.MaxMitigations <= 0 {
		b.MaxMitigations = DefaultMaxMitigations
	}
	if b.MaxTargets <= 0 {
		b.MaxTargets = DefaultMaxTargets
	}
	if b.MaxRules <= 0 {
		b.MaxRules = DefaultMaxRules
	}
	if b.MaxBodyBytes <= 0 {
		b.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return b
}

// Validate checks a desired state against the bounds and the contract of
// scrub.Desired, and names the field at fault ("mitigations[2].rules[0].action: ...").
func (b Bounds) Validate(d scrub.Desired) error {
	b = b.normalized()
	if len(d.Mitigations) > b.MaxMitigations {
		return fmt.Errorf("mitigations: %d is more than this node accepts (%d)", len(d.Mitigations), b.MaxMitigations)
	}
	ids := map[string]int{}
	type owned struct {
		p netip.Prefix
		m int
	}
	var all []owned
	for i, m := range d.Mitigations {
		key := fmt.Sprintf("mitigations[%d]", i)
		if m.ID == "" {
			return fmt.Errorf("%s.id: empty", key)
		}
		if len(m.ID) > 128 {
			return fmt.Errorf("%s.id: longer than 128 bytes", key)
		}
		if j, dup := ids[m.ID]; dup {
			return fmt.Errorf("%s.id: %q is also mitigations[%d]", key, m.ID, j)
		}
		ids[m.ID] = i
		if len(m.Targets) == 0 {
			return fmt.Errorf("%s.targets: a mitigation needs at least one target prefix", key)
		}
		if len(m.Targets) > b.MaxTargets {
			return fmt.Errorf("%s.targets: %d is more than this node accepts (%d)", key, len(m.Targets), b.MaxTargets)
		}
		for j, p := range m.Targets {
			if !p.IsValid() {
				return fmt.Errorf("%s.targets[%d]: not a prefix", key, j)
			}
			all = append(all, owned{p.Masked(), i})
		}
		if len(m.Rules) > b.MaxRules {
			return fmt.Errorf("%s.rules: %d is more than this node accepts (%d)", key, len(m.Rules), b.MaxRules)
		}
		names := map[string]bool{}
		for j, r := range m.Rules {
			if err := validRule(r, names); err != nil {
				return fmt.Errorf("%s.rules[%d].%w", key, j, err)
			}
		}
	}
	// Targets of different mitigations must not overlap (scrub.Mitigation).
	// Sorted by address then length, a prefix comes after every prefix
	// that contains it, so a stack of the open containers finds each overlap.
	slices.SortFunc(all, func(a, b owned) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return a.p.Bits() - b.p.Bits()
	})
	var open []owned
	for _, o := range all {
		for len(open) > 0 && !open[len(open)-1].p.Contains(o.p.Addr()) {
			open = open[:len(open)-1]
		}
		if n := len(open); n > 0 && open[n-1].m != o.m {
			a, b := open[n-1], o
			if a.m > b.m {
				a, b = b, a
			}
			return fmt.Errorf("mitigations[%d].targets: %s overlaps %s of mitigations[%d]", b.m, b.p, a.p, a.m)
		}
		open = append(open, o)
	}
	return nil
}

func validRule(r scrub.Rule, names map[string]bool) error {
	if r.Name == "" {
		return fmt.Errorf("name: empty")
	}
	if names[r.Name] {
		return fmt.Errorf("name: %q is used twice in this mitigation", r.Name)
	}
	names[r.Name] = true
	switch r.Action {
	case "", scrub.ActionDrop, scrub.ActionAccept:
	default:
		return fmt.Errorf("action: %q: use %q or %q", r.Action, scrub.ActionDrop, scrub.ActionAccept)
	}
	for k, p := range r.Sources {
		if !p.IsValid() {
			return fmt.Errorf("sources[%d]: not a prefix", k)
		}
	}
	for k, pr := range r.SrcPorts {
		if pr.Low > pr.High {
			return fmt.Errorf("src-ports[%d]: low %d is above high %d", k, pr.Low, pr.High)
		}
	}
	for k, pr := range r.DstPorts {
		if pr.Low > pr.High {
			return fmt.Errorf("dst-ports[%d]: low %d is above high %d", k, pr.Low, pr.High)
		}
	}
	if r.MinLength != 0 && r.MaxLength != 0 && r.MinLength > r.MaxLength {
		return fmt.Errorf("min-length: %d is above max-length %d", r.MinLength, r.MaxLength)
	}
	return nil
}
