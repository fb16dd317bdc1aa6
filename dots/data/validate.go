package data

import (
	"fmt"
	"net/url"
	"strings"
)

// Validate checks the rules of RFC 8783 §5 for a dots-client entry.
func (c *DotsClient) Validate(path string) error {
	if c.CUID == "" {
		return bad(path+"/cuid", TagMissingAttribute, "cuid is empty")
	}
	if c.Aliases != nil {
		if err := c.Aliases.Validate(path + "/aliases"); err != nil {
			return err
		}
	}
	if c.ACLs != nil {
		return c.ACLs.Validate(path + "/acls")
	}
	return nil
}

func checkName(path, what, name string) error {
	if name == "" || len(name) > MaxNameLen {
		return bad(path+"/name", TagInvalidValue, "%s name must be 1 to %d characters", what, MaxNameLen)
	}
	return nil
}

// Validate checks every alias and that names are unique.
func (a *Aliases) Validate(path string) error {
	seen := map[string]bool{}
	for i := range a.Alias {
		al := &a.Alias[i]
		p := fmt.Sprintf("%s/alias[name=%q]", path, al.Name)
		if seen[al.Name] {
			return bad(p, TagInvalidValue, "alias %q is given twice", al.Name)
		}
		seen[al.Name] = true
		if err := al.Validate(p); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the rules of RFC 8783 §6.1: a name, at least one of
// target-prefix, target-fqdn and target-uri, port ranges lower <= upper.
func (a *Alias) Validate(path string) error {
	if err := checkName(path, "alias", a.Name); err != nil {
		return err
	}
	if len(a.TargetPrefix) == 0 && len(a.TargetFQDN) == 0 && len(a.TargetURI) == 0 {
		return bad(path, TagMissingAttribute, "alias %q needs at least one of target-prefix, target-fqdn, target-uri (RFC 8783 §6.1)", a.Name)
	}
	for _, pr := range a.TargetPortRange {
		if pr.UpperPort != nil && *pr.UpperPort < pr.LowerPort {
			return bad(path+"/target-port-range", TagInvalidValue, "upper-port %d is below lower-port %d", *pr.UpperPort, pr.LowerPort)
		}
	}
	for _, f := range a.TargetFQDN {
		if !validFQDN(f) {
			return bad(path+"/target-fqdn", TagInvalidValue, "%q is not a domain name", f)
		}
	}
	for _, u := range a.TargetURI {
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" || pu.Hostname() == "" {
			return bad(path+"/target-uri", TagInvalidValue, "%q is not an absolute URI with a host", u)
		}
	}
	return nil
}

func validFQDN(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > MaxFQDNLen {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Validate checks every ACL and that names are unique.
func (a *ACLs) Validate(path string) error {
	seen := map[string]bool{}
	for i := range a.ACL {
		acl := &a.ACL[i]
		p := fmt.Sprintf("%s/acl[name=%q]", path, acl.Name)
		if seen[acl.Name] {
			return bad(p, TagInvalidValue, "acl %q is given twice", acl.Name)
		}
		seen[acl.Name] = true
		if err := acl.Validate(p); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks one ACL (RFC 8519 §4.1, RFC 8783 §4.3 and §7.2).
func (a *ACL) Validate(path string) error {
	if err := checkName(path, "acl", a.Name); err != nil {
		return err
	}
	if len(a.ACEs.ACE) == 0 {
		return bad(path+"/aces", TagMissingAttribute, "acl %q has no ace", a.Name)
	}
	seen := map[string]bool{}
	for i := range a.ACEs.ACE {
		e := &a.ACEs.ACE[i]
		p := fmt.Sprintf("%s/aces/ace[name=%q]", path, e.Name)
		if seen[e.Name] {
			return bad(p, TagInvalidValue, "ace %q is given twice", e.Name)
		}
		seen[e.Name] = true
		if err := checkName(p, "ace", e.Name); err != nil {
			return err
		}
		if err := e.validate(p, a.Type, a.Activation()); err != nil {
			return err
		}
	}
	return nil
}

func (e *ACE) validate(path string, typ ACLType, act ActivationType) error {
	m := &e.Matches
	mp := path + "/matches"
	if m.IPv4 != nil && m.IPv6 != nil {
		return bad(mp, TagBadElement, "ipv4 and ipv6 are alternatives of one choice")
	}
	if n := countSet(m.TCP != nil, m.UDP != nil, m.ICMP != nil); n > 1 {
		return bad(mp, TagBadElement, "tcp, udp and icmp are alternatives of one choice")
	}
	if m.IPv4 != nil && typ == IPv6ACLType || m.IPv6 != nil && typ == IPv4ACLType {
		return bad(mp, TagInvalidValue, "the matches do not fit the acl type %s", typ)
	}
	if err := m.validateL3(mp); err != nil {
		return err
	}
	if err := m.validateL4(mp); err != nil {
		return err
	}
	if act == Immediate && m.destination() == nil {
		return bad(mp, TagMissingAttribute, "an immediate acl needs a destination-ipv4-network or destination-ipv6-network in each ace (RFC 8783 §7.2)")
	}
	ap := path + "/actions"
	if e.Actions.Forwarding == "" {
		return bad(ap+"/forwarding", TagMissingAttribute, "forwarding is mandatory")
	}
	if e.Actions.RateLimit != nil {
		if e.Actions.Forwarding != Accept {
			return bad(ap+"/rate-limit", TagInvalidValue, "rate-limit is allowed only when forwarding is accept (RFC 8783 §4.3)")
		}
		if *e.Actions.RateLimit < 0 {
			return bad(ap+"/rate-limit", TagInvalidValue, "rate-limit is negative")
		}
	}
	return nil
}

func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// destination returns the destination network of the l3 match, if any.
func (m *Matches) destination() *Prefix {
	switch {
	case m.IPv4 != nil:
		return m.IPv4.Destination
	case m.IPv6 != nil:
		return m.IPv6.Destination
	}
	return nil
}

func (m *Matches) validateL3(mp string) error {
	if v4 := m.IPv4; v4 != nil {
		p := mp + "/ipv4"
		for _, n := range []struct {
			name string
			pfx  *Prefix
		}{{"destination-ipv4-network", v4.Destination}, {"source-ipv4-network", v4.Source}} {
			if n.pfx != nil && !n.pfx.Addr().Is4() {
				return bad(p+"/"+n.name, TagInvalidValue, "%s is not an IPv4 prefix", n.pfx)
			}
		}
		if err := checkCommon(p, v4.DSCP, v4.ECN); err != nil {
			return err
		}
		if v4.IHL != nil && (*v4.IHL < 5 || *v4.IHL > 15) {
			return bad(p+"/ihl", TagInvalidValue, "ihl %d is not 5..15", *v4.IHL)
		}
		if v4.Flags != nil {
			if err := checkBits(*v4.Flags, IPv4FlagBits); err != nil {
				return bad(p+"/flags", TagInvalidValue, "%v", err)
			}
			if v4.Fragment != nil {
				return bad(p+"/fragment", TagBadElement, "fragment cannot be combined with flags (RFC 8783 §4.3)")
			}
		}
		return checkFragment(p+"/fragment", v4.Fragment, true)
	}
	if v6 := m.IPv6; v6 != nil {
		p := mp + "/ipv6"
		for _, n := range []struct {
			name string
			pfx  *Prefix
		}{{"destination-ipv6-network", v6.Destination}, {"source-ipv6-network", v6.Source}} {
			if n.pfx != nil && !n.pfx.Addr().Is6() {
				return bad(p+"/"+n.name, TagInvalidValue, "%s is not an IPv6 prefix", n.pfx)
			}
		}
		if err := checkCommon(p, v6.DSCP, v6.ECN); err != nil {
			return err
		}
		if v6.FlowLabel != nil && *v6.FlowLabel > 0xfffff {
			return bad(p+"/flow-label", TagInvalidValue, "flow-label %d exceeds 20 bits", *v6.FlowLabel)
		}
		return checkFragment(p+"/fragment", v6.Fragment, false)
	}
	return nil
}

func checkCommon(p string, dscp, ecn *uint8) error {
	if dscp != nil && *dscp > 63 {
		return bad(p+"/dscp", TagInvalidValue, "dscp %d exceeds 63", *dscp)
	}
	if ecn != nil && *ecn > 3 {
		return bad(p+"/ecn", TagInvalidValue, "ecn %d exceeds 3", *ecn)
	}
	return nil
}

func checkOperator(p string, op *Bits) error {
	if op == nil {
		return nil
	}
	if err := checkBits(*op, OperatorBits); err != nil {
		return bad(p, TagInvalidValue, "%v", err)
	}
	if op.Has("any") && op.Has("match") {
		return bad(p, TagInvalidValue, "operator bits any and match cannot be set together (RFC 8783 §4.3)")
	}
	return nil
}

func checkFragment(p string, f *Fragment, v4 bool) error {
	if f == nil {
		return nil
	}
	if err := checkOperator(p+"/operator", f.Operator); err != nil {
		return err
	}
	if len(f.Type.Names()) == 0 {
		return bad(p+"/type", TagMissingAttribute, "fragment type has no bit set")
	}
	if err := checkBits(f.Type, FragmentBits); err != nil {
		return bad(p+"/type", TagInvalidValue, "%v", err)
	}
	if !v4 && f.Type.Has("df") {
		return bad(p+"/type", TagInvalidValue, "fragment type df exists only in IPv4 (RFC 8783 §4.3)")
	}
	return nil
}

func (m *Matches) validateL4(mp string) error {
	if t := m.TCP; t != nil {
		p := mp + "/tcp"
		if t.DataOffset != nil && (*t.DataOffset < 5 || *t.DataOffset > 15) {
			return bad(p+"/data-offset", TagInvalidValue, "data-offset %d is not 5..15", *t.DataOffset)
		}
		if t.Flags != nil {
			if err := checkBits(*t.Flags, TCPFlagBits); err != nil {
				return bad(p+"/flags", TagInvalidValue, "%v", err)
			}
			if t.FlagsBitmask != nil {
				return bad(p+"/flags-bitmask", TagBadElement, "flags-bitmask cannot be combined with flags (RFC 8783 §4.3)")
			}
		}
		if fb := t.FlagsBitmask; fb != nil {
			if err := checkOperator(p+"/flags-bitmask/operator", fb.Operator); err != nil {
				return err
			}
			if fb.Bitmask > 0x0fff {
				return bad(p+"/flags-bitmask/bitmask", TagInvalidValue, "bitmask %#x uses more than the 12 flag bits", fb.Bitmask)
			}
		}
		if err := t.SourcePort.validate(p + "/source-port-range-or-operator"); err != nil {
			return err
		}
		return t.DestinationPort.validate(p + "/destination-port-range-or-operator")
	}
	if u := m.UDP; u != nil {
		p := mp + "/udp"
		if err := u.SourcePort.validate(p + "/source-port-range-or-operator"); err != nil {
			return err
		}
		return u.DestinationPort.validate(p + "/destination-port-range-or-operator")
	}
	return nil
}

// validate checks RFC 8519's port-range-or-operator choice.
func (r *PortRangeOrOp) validate(p string) error {
	if r == nil {
		return nil
	}
	isRange := r.LowerPort != nil || r.UpperPort != nil
	isOp := r.Operator != nil || r.Port != nil
	switch {
	case isRange && isOp:
		return bad(p, TagBadElement, "a port range (lower-port, upper-port) and an operator with port are alternatives")
	case isRange && (r.LowerPort == nil || r.UpperPort == nil):
		return bad(p, TagMissingAttribute, "a port range needs both lower-port and upper-port")
	case isRange && *r.UpperPort < *r.LowerPort:
		return bad(p+"/upper-port", TagInvalidValue, "upper-port %d is below lower-port %d", *r.UpperPort, *r.LowerPort)
	case isOp && r.Port == nil:
		return bad(p+"/port", TagMissingAttribute, "an operator needs a port")
	case !isRange && !isOp:
		return bad(p, TagMissingAttribute, "empty port match")
	}
	return nil
}
