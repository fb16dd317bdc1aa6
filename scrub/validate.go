package scrub

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Default bounds of a node; NFTOptions may lower or raise them.
const (
	DefaultMaxMitigations = 10000
	DefaultMaxRules       = 64    // per mitigation
	DefaultMaxTargets     = 65536 // destination prefixes over all mitigations
	DefaultMaxSources     = 4096  // source prefixes per rule
)

// Bounds limit what a node accepts; Set refuses a Desired beyond them.
type Bounds struct {
	MaxMitigations int
	MaxRules       int // per mitigation
	MaxTargets     int // over all mitigations
	MaxSources     int // per rule
}

func (b Bounds) withDefaults() Bounds {
	if b.MaxMitigations <= 0 {
		b.MaxMitigations = DefaultMaxMitigations
	}
	if b.MaxRules <= 0 {
		b.MaxRules = DefaultMaxRules
	}
	if b.MaxTargets <= 0 {
		b.MaxTargets = DefaultMaxTargets
	}
	if b.MaxSources <= 0 {
		b.MaxSources = DefaultMaxSources
	}
	return b
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("scrub: invalid desired state")

// portProtocols are the protocols whose first four transport bytes are ports.
var portProtocols = []uint8{6, 17, 33, 132, 136} // tcp, udp, dccp, sctp, udplite

// plan is a validated, normalised Desired with the kernel object names.
type plan struct {
	mits []mitPlan
}

type mitPlan struct {
	id       string
	counter  string // named counter of every packet to the targets
	chain4   string
	chain6   string
	targets4 []netip.Prefix // masked, sorted, none containing another
	targets6 []netip.Prefix
	rules    []rulePlan
}

// rulePlan is a validated Rule: action set, prefixes masked, ports merged.
type rulePlan Rule

func hash(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:n]
}

// MitigationCounterName is the name of the counter object of mitigation id.
func MitigationCounterName(id string) string { return "m_" + hash(id, 16) }

// RuleCounterName is the name of the counter object of rule name in mitigation id.
func RuleCounterName(id, name string) string { return ruleCounterName(id, name) }

func ruleCounterName(id, name string) string {
	return "r_" + hash(id, 16) + "_" + hash(name, 12)
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// compile validates d against b and returns the plan.
func compile(d Desired, b Bounds) (*plan, error) {
	b = b.withDefaults()
	if len(d.Mitigations) > b.MaxMitigations {
		return nil, invalid("%d mitigations, the bound is %d", len(d.Mitigations), b.MaxMitigations)
	}
	p := &plan{}
	ids := map[string]bool{}
	names := map[string]string{} // kernel name -> owner, catches hash collisions
	var all []owned
	total := 0
	for i, m := range d.Mitigations {
		if m.ID == "" {
			return nil, invalid("mitigation %d: empty id", i)
		}
		if ids[m.ID] {
			return nil, invalid("mitigation %q: duplicate id", m.ID)
		}
		ids[m.ID] = true
		if len(m.Targets) == 0 {
			return nil, invalid("mitigation %q: no targets", m.ID)
		}
		total += len(m.Targets)
		if total > b.MaxTargets {
			return nil, invalid("more than %d targets in all (the bound)", b.MaxTargets)
		}
		if len(m.Rules) > b.MaxRules {
			return nil, invalid("mitigation %q: %d rules, the bound is %d", m.ID, len(m.Rules), b.MaxRules)
		}
		mp := mitPlan{id: m.ID, counter: MitigationCounterName(m.ID)}
		mp.chain4 = "m4_" + mp.counter[2:]
		mp.chain6 = "m6_" + mp.counter[2:]
		if o, ok := names[mp.counter]; ok {
			return nil, invalid("mitigation %q: counter name collides with %q", m.ID, o)
		}
		names[mp.counter] = m.ID
		t4, t6, err := normPrefixes(m.Targets)
		if err != nil {
			return nil, invalid("mitigation %q: target %v", m.ID, err)
		}
		mp.targets4, mp.targets6 = t4, t6
		for _, t := range append(slices.Clone(t4), t6...) {
			all = append(all, owned{t, m.ID})
		}
		rnames := map[string]bool{}
		for j, r := range m.Rules {
			rp, err := compileRule(r, b)
			if err != nil {
				return nil, invalid("mitigation %q rule %d (%q): %v", m.ID, j, r.Name, err)
			}
			if rnames[r.Name] {
				return nil, invalid("mitigation %q: duplicate rule name %q", m.ID, r.Name)
			}
			rnames[r.Name] = true
			cn := ruleCounterName(m.ID, r.Name)
			if o, ok := names[cn]; ok {
				return nil, invalid("mitigation %q rule %q: counter name collides with %q", m.ID, r.Name, o)
			}
			names[cn] = m.ID + "/" + r.Name
			mp.rules = append(mp.rules, rp)
		}
		p.mits = append(p.mits, mp)
	}
	if err := checkOverlap(all); err != nil {
		return nil, err
	}
	return p, nil
}

type owned struct {
	p  netip.Prefix
	id string
}

// checkOverlap refuses targets of different mitigations that overlap: a
// packet must belong to one mitigation. After sorting by start address, a
// prefix that overlaps any later one contains its successor.
func checkOverlap(all []owned) error {
	slices.SortFunc(all, func(a, b owned) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return a.p.Bits() - b.p.Bits()
	})
	for i := 0; i+1 < len(all); i++ {
		a, b := all[i], all[i+1]
		if a.p.Addr().Is4() == b.p.Addr().Is4() && a.p.Overlaps(b.p) {
			return invalid("target %s of %q overlaps %s of %q", a.p, a.id, b.p, b.id)
		}
	}
	return nil
}

// normPrefixes masks, sorts and deduplicates ps (dropping prefixes contained
// in others) and splits them by family.
func normPrefixes(ps []netip.Prefix) (v4, v6 []netip.Prefix, err error) {
	for _, p := range ps {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("invalid prefix %q", p)
		}
		if p.Addr().Zone() != "" {
			return nil, nil, fmt.Errorf("prefix %s has a zone", p)
		}
		p = p.Masked()
		if p.Addr().Is4In6() {
			return nil, nil, fmt.Errorf("prefix %s is IPv4-mapped; write it as IPv4", p)
		}
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return merge(v4), merge(v6), nil
}

func merge(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Overlaps(p) {
			continue // sorted: the earlier one contains p
		}
		out = append(out, p)
	}
	return out
}

func compileRule(r Rule, b Bounds) (rulePlan, error) {
	if r.Name == "" {
		return rulePlan{}, errors.New("empty name")
	}
	switch r.Action {
	case "":
		r.Action = ActionDrop
	case ActionDrop, ActionAccept:
	default:
		return rulePlan{}, fmt.Errorf("action %q: want %q or %q", r.Action, ActionDrop, ActionAccept)
	}
	if len(r.Sources) > b.MaxSources {
		return rulePlan{}, fmt.Errorf("%d sources, the bound is %d", len(r.Sources), b.MaxSources)
	}
	s4, s6, err := normPrefixes(r.Sources)
	if err != nil {
		return rulePlan{}, fmt.Errorf("source %v", err)
	}
	if len(r.Sources) > 0 {
		r.Sources = append(s4, s6...)
	}
	for _, pr := range append(slices.Clone(r.SrcPorts), r.DstPorts...) {
		if pr.Low > pr.High {
			return rulePlan{}, fmt.Errorf("port range %d-%d: low above high", pr.Low, pr.High)
		}
	}
	if len(r.SrcPorts)+len(r.DstPorts) > 0 {
		for _, pr := range r.Protocols {
			if !slices.Contains(portProtocols, pr) {
				return rulePlan{}, fmt.Errorf("ports with protocol %d, which has no ports", pr)
			}
		}
	}
	if len(r.SrcPorts)+len(r.DstPorts) > 0 && r.Fragment {
		return rulePlan{}, errors.New("ports and fragment: non-first fragments carry no ports")
	}
	if r.MinLength != 0 && r.MaxLength != 0 && r.MinLength > r.MaxLength {
		return rulePlan{}, fmt.Errorf("min-length %d above max-length %d", r.MinLength, r.MaxLength)
	}
	r.Protocols = dedupe(r.Protocols)
	r.SrcPorts = mergePorts(r.SrcPorts)
	r.DstPorts = mergePorts(r.DstPorts)
	return rulePlan(r), nil
}

func dedupe(ps []uint8) []uint8 {
	if len(ps) == 0 {
		return nil
	}
	ps = slices.Clone(ps)
	slices.Sort(ps)
	return slices.Compact(ps)
}

// mergePorts sorts ranges and joins overlapping or adjacent ones, as
// interval sets refuse overlapping elements.
func mergePorts(rs []PortRange) []PortRange {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Low) - int(b.Low) })
	out := []PortRange{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint32(r.Low) <= uint32(last.High)+1 {
			last.High = max(last.High, r.High)
			continue
		}
		out = append(out, r)
	}
	return out
}

// hasFamily reports whether rule r can match packets of the family (4 or 6):
// a rule with sources only of the other family, or a fragment rule on IPv6,
// never can.
func (r *rulePlan) hasFamily(v6 bool) bool {
	if v6 && r.Fragment {
		return false
	}
	if len(r.Sources) == 0 {
		return true
	}
	for _, s := range r.Sources {
		if s.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

func (r *rulePlan) sources(v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range r.Sources {
		if s.Addr().Is6() == v6 {
			out = append(out, s)
		}
	}
	return out
}
