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
	// MaxMitigationTargets bounds the targets of one mitigation; 0: only
	// MaxTargets bounds them.
	MaxMitigationTargets int
	// MaxACLRules bounds the nftables rules of all ACL entries (default
	// DefaultMaxACLRules); Set refuses ACLs that need more.
	MaxACLRules int
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
	acls []aclPlan
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

// MaxIDBytes bounds the length of a mitigation ID.
const MaxIDBytes = 128

// FieldError is a refused Desired: Path names the field at fault
// ("mitigations[2].rules[0].action"), Mitigation and Rule the mitigation ID
// and rule name where the problem does not name them itself. It wraps
// ErrInvalid.
type FieldError struct {
	Path       string
	Problem    string
	Mitigation string
	Rule       string
}

func (e *FieldError) Error() string { return ErrInvalid.Error() + ": " + e.Detail() }

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Detail is the message without the ErrInvalid prefix, e.g.
// `mitigations[0].rules[1].action: "reject": use "drop" or "accept" (mitigation "c1/1", rule "ntp")`.
func (e *FieldError) Detail() string {
	s := e.Path + ": " + e.Problem
	switch {
	case e.Mitigation != "" && e.Rule != "":
		s += fmt.Sprintf(" (mitigation %q, rule %q)", e.Mitigation, e.Rule)
	case e.Mitigation != "":
		s += fmt.Sprintf(" (mitigation %q)", e.Mitigation)
	}
	return s
}

func fieldErr(path, format string, a ...any) *FieldError {
	return &FieldError{Path: path, Problem: fmt.Sprintf(format, a...)}
}

// Validate checks d against the contract of Desired and the bounds b (zero
// fields take the defaults); a refusal is a *FieldError. Set validates the
// same way before it changes anything.
func Validate(d Desired, b Bounds) error {
	_, err := compile(d, b)
	return err
}

// compiler carries what compile checks across mitigations.
type compiler struct {
	b     Bounds
	ids   map[string]int    // mitigation id -> index
	names map[string]string // kernel name -> owner, catches hash collisions
	all   []owned
	total int
}

// compile validates d against b and returns the plan.
func compile(d Desired, b Bounds) (*plan, error) {
	c := &compiler{b: b.withDefaults(), ids: map[string]int{}, names: map[string]string{}}
	if len(d.Mitigations) > c.b.MaxMitigations {
		return nil, fieldErr("mitigations", "%d is more than this node accepts (%d)", len(d.Mitigations), c.b.MaxMitigations)
	}
	p := &plan{}
	for i, m := range d.Mitigations {
		mp, err := c.mitigation(i, m)
		if err != nil {
			return nil, err
		}
		p.mits = append(p.mits, mp)
	}
	if err := checkOverlap(c.all); err != nil {
		return nil, err
	}
	acls, err := c.acls(d.ACLs)
	if err != nil {
		return nil, err
	}
	p.acls = acls
	return p, nil
}

func (c *compiler) mitigation(i int, m Mitigation) (mitPlan, error) {
	key := fmt.Sprintf("mitigations[%d]", i)
	if err := c.id(key, i, m.ID); err != nil {
		return mitPlan{}, err
	}
	mp := mitPlan{id: m.ID, counter: MitigationCounterName(m.ID)}
	mp.chain4 = "m4_" + mp.counter[2:]
	mp.chain6 = "m6_" + mp.counter[2:]
	if err := c.claim(mp.counter, m.ID, key+".id", m.ID, ""); err != nil {
		return mitPlan{}, err
	}
	if err := c.targets(key, i, m, &mp); err != nil {
		err.Mitigation = m.ID
		return mitPlan{}, err
	}
	if len(m.Rules) > c.b.MaxRules {
		return mitPlan{}, &FieldError{Path: key + ".rules", Mitigation: m.ID,
			Problem: fmt.Sprintf("%d is more than this node accepts (%d)", len(m.Rules), c.b.MaxRules)}
	}
	rnames := map[string]bool{}
	for j, r := range m.Rules {
		rkey := fmt.Sprintf("%s.rules[%d]", key, j)
		rp, err := compileRule(r, c.b)
		if err != nil {
			fe := &FieldError{Path: rkey, Problem: err.Error()}
			if errors.As(err, &fe) {
				fe.Path = rkey + "." + fe.Path
			}
			fe.Mitigation, fe.Rule = m.ID, r.Name
			return mitPlan{}, fe
		}
		if rnames[r.Name] {
			return mitPlan{}, &FieldError{Path: rkey + ".name", Mitigation: m.ID,
				Problem: fmt.Sprintf("%q is used twice in this mitigation", r.Name)}
		}
		rnames[r.Name] = true
		if err := c.claim(ruleCounterName(m.ID, r.Name), m.ID+"/"+r.Name, rkey+".name", m.ID, r.Name); err != nil {
			return mitPlan{}, err
		}
		mp.rules = append(mp.rules, rp)
	}
	return mp, nil
}

func (c *compiler) id(key string, i int, id string) error {
	switch j, dup := c.ids[id]; {
	case id == "":
		return fieldErr(key+".id", "empty")
	case len(id) > MaxIDBytes:
		return fieldErr(key+".id", "longer than %d bytes", MaxIDBytes)
	case dup:
		return fieldErr(key+".id", "%q is also mitigations[%d]", id, j)
	}
	c.ids[id] = i
	return nil
}

// claim reserves a kernel object name for owner.
func (c *compiler) claim(name, owner, path, id, rule string) error {
	if o, ok := c.names[name]; ok {
		return &FieldError{Path: path, Mitigation: id, Rule: rule, Problem: fmt.Sprintf("counter name collides with %q", o)}
	}
	c.names[name] = owner
	return nil
}

func (c *compiler) targets(key string, i int, m Mitigation, mp *mitPlan) *FieldError {
	if len(m.Targets) == 0 {
		return fieldErr(key+".targets", "a mitigation needs at least one target prefix")
	}
	if n := c.b.MaxMitigationTargets; n > 0 && len(m.Targets) > n {
		return fieldErr(key+".targets", "%d is more than this node accepts (%d)", len(m.Targets), n)
	}
	c.total += len(m.Targets)
	if c.total > c.b.MaxTargets {
		return fieldErr(key+".targets", "more than %d targets over all mitigations, which is what this node accepts", c.b.MaxTargets)
	}
	t4, t6, err := normPrefixes(key+".targets", m.Targets)
	if err != nil {
		return err
	}
	mp.targets4, mp.targets6 = t4, t6
	for _, t := range append(slices.Clone(t4), t6...) {
		c.all = append(c.all, owned{t, m.ID, i})
	}
	return nil
}

type owned struct {
	p  netip.Prefix
	id string
	m  int // index of the mitigation
}

// checkOverlap refuses targets of different mitigations that overlap: a
// packet must belong to one mitigation. After sorting by start address, a
// prefix that overlaps any later one contains its successor (the prefixes
// of one mitigation are merged, so that successor is another's).
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
			if a.m > b.m {
				a, b = b, a
			}
			return &FieldError{Path: fmt.Sprintf("mitigations[%d].targets", b.m), Mitigation: b.id,
				Problem: fmt.Sprintf("%s overlaps %s of mitigations[%d] %q", b.p, a.p, a.m, a.id)}
		}
	}
	return nil
}

// normPrefixes masks, sorts and deduplicates ps (dropping prefixes contained
// in others) and splits them by family; an error names field[k].
func normPrefixes(field string, ps []netip.Prefix) (v4, v6 []netip.Prefix, err *FieldError) {
	for k, p := range ps {
		path := fmt.Sprintf("%s[%d]", field, k)
		if !p.IsValid() {
			return nil, nil, fieldErr(path, "not a prefix")
		}
		if p.Addr().Zone() != "" {
			return nil, nil, fieldErr(path, "%s has a zone", p)
		}
		p = p.Masked()
		if p.Addr().Is4In6() {
			return nil, nil, fieldErr(path, "%s is IPv4-mapped; write it as IPv4", p)
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

// compileRule checks and normalises one rule; an error is a *FieldError
// whose Path is relative to the rule ("action", "dst-ports[0]").
func compileRule(r Rule, b Bounds) (rulePlan, error) {
	if r.Name == "" {
		return rulePlan{}, fieldErr("name", "empty")
	}
	switch r.Action {
	case "":
		r.Action = ActionDrop
	case ActionDrop, ActionAccept:
	default:
		return rulePlan{}, fieldErr("action", "%q: use %q or %q", r.Action, ActionDrop, ActionAccept)
	}
	if len(r.Sources) > b.MaxSources {
		return rulePlan{}, fieldErr("sources", "%d is more than this node accepts (%d)", len(r.Sources), b.MaxSources)
	}
	s4, s6, err := normPrefixes("sources", r.Sources)
	if err != nil {
		return rulePlan{}, err
	}
	if len(r.Sources) > 0 {
		r.Sources = append(s4, s6...)
	}
	if err := checkPorts(r); err != nil {
		return rulePlan{}, err
	}
	if r.MinLength != 0 && r.MaxLength != 0 && r.MinLength > r.MaxLength {
		return rulePlan{}, fieldErr("min-length", "%d is above max-length %d", r.MinLength, r.MaxLength)
	}
	r.Protocols = dedupe(r.Protocols)
	r.SrcPorts = mergePorts(r.SrcPorts)
	r.DstPorts = mergePorts(r.DstPorts)
	return rulePlan(r), nil
}

// checkPorts checks the port ranges of r and that they can match.
func checkPorts(r Rule) *FieldError {
	for _, f := range []struct {
		name string
		prs  []PortRange
	}{{"src-ports", r.SrcPorts}, {"dst-ports", r.DstPorts}} {
		for k, pr := range f.prs {
			if pr.Low > pr.High {
				return fieldErr(fmt.Sprintf("%s[%d]", f.name, k), "low %d is above high %d", pr.Low, pr.High)
			}
		}
	}
	if len(r.SrcPorts)+len(r.DstPorts) == 0 {
		return nil
	}
	for k, pr := range r.Protocols {
		if !slices.Contains(portProtocols, pr) {
			return fieldErr(fmt.Sprintf("protocols[%d]", k), "protocol %d has no ports, and the rule matches ports (tcp, udp, dccp, sctp or udplite only)", pr)
		}
	}
	if r.Fragment {
		return fieldErr("fragment", "a rule with ports cannot match fragments: non-first fragments carry no ports")
	}
	return nil
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
