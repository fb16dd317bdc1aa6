package dots

import "fmt"

// Bounds on the attributes of a mitigation request (RFC 9132 §4.4.1 and
// RFC 9133 acl-list), checked before any other validation so that no
// oversize value is parsed, stored, echoed in a diagnostic or returned on
// every GET. RFC 9132 §4.4.1 already asks a client to split a scope that
// does not fit one datagram (1280 bytes when the path MTU is unknown, some
// 50 IPv4 prefixes), so the list bounds leave room for several times that.
const (
	// MaxFQDNLen is RFC 1035 §2.3.4's 255 octets of a name on the wire:
	// 253 characters in text form without the trailing dot.
	MaxFQDNLen = 253
	// MaxURILen is the URI length browsers and servers commonly accept.
	MaxURILen = 2048
	// MaxPrefixTextLen covers the longest IPv6 prefix text (45 characters
	// for an IPv4-embedded address, plus "/128").
	MaxPrefixTextLen = 49
	// MaxAliasNameLen and MaxACLNameLen bound names of RFC 8783 aliases and
	// ACLs, which the YANG leaves as strings of any length.
	MaxAliasNameLen = 255
	MaxACLNameLen   = 255
	// MaxCountermeasureLen bounds Levee's countermeasure wish ("rtbh",
	// "flowspec", "scrubbing" ...).
	MaxCountermeasureLen = 64
	// MaxNoteLen bounds the private-use note.
	MaxNoteLen = 1024

	MaxTargetPrefixes   = 256
	MaxTargetPortRanges = 128
	MaxTargetProtocols  = 256 // every uint8 once
	MaxTargetFQDNs      = 64
	MaxTargetURIs       = 64
	MaxAliasNames       = 64
	MaxACLs             = 64
)

// AttributeLimit is the bound on one attribute: how many entries its list
// may have (0: not a list) and how long each string may be (0: not a
// string), in bytes.
type AttributeLimit struct {
	Name       string
	MaxEntries int
	MaxLen     int
}

// AttributeLimits lists the bounds ParseMitigationRequest enforces.
var AttributeLimits = []AttributeLimit{
	{"target-prefix", MaxTargetPrefixes, MaxPrefixTextLen},
	{"target-port-range", MaxTargetPortRanges, 0},
	{"target-protocol", MaxTargetProtocols, 0},
	{"target-fqdn", MaxTargetFQDNs, MaxFQDNLen},
	{"target-uri", MaxTargetURIs, MaxURILen},
	{"alias-name", MaxAliasNames, MaxAliasNameLen},
	{"acl-list", MaxACLs, 0},
	{"acl-name", 0, MaxACLNameLen},
	{"levee:countermeasure", 0, MaxCountermeasureLen},
	{"levee:note", 0, MaxNoteLen},
}

// checkBounds refuses a scope with a list or a string over its bound with a
// 4.00 naming the attribute, the entry and the bound, e.g.
// "target-fqdn[3]: 300 bytes, at most 253".
func checkBounds(s *Scope) error {
	lists := []struct {
		name string
		n    int
		max  int
	}{
		{"target-prefix", len(s.TargetPrefix), MaxTargetPrefixes},
		{"target-port-range", len(s.TargetPortRange), MaxTargetPortRanges},
		{"target-protocol", len(s.TargetProtocol), MaxTargetProtocols},
		{"target-fqdn", len(s.TargetFQDN), MaxTargetFQDNs},
		{"target-uri", len(s.TargetURI), MaxTargetURIs},
		{"alias-name", len(s.AliasName), MaxAliasNames},
		{"acl-list", len(s.ACLList), MaxACLs},
	}
	for _, l := range lists {
		if l.n > l.max {
			return Errorf(BadRequest, "%s: %d entries, at most %d (split the scope over several mitigation requests)", l.name, l.n, l.max)
		}
	}
	strs := []struct {
		name string
		vals []string
		max  int
	}{
		{"target-prefix", s.TargetPrefix, MaxPrefixTextLen},
		{"target-fqdn", s.TargetFQDN, MaxFQDNLen},
		{"target-uri", s.TargetURI, MaxURILen},
		{"alias-name", s.AliasName, MaxAliasNameLen},
	}
	for _, l := range strs {
		for i, v := range l.vals {
			if len(v) > l.max {
				return Errorf(BadRequest, "%s[%d]: %d bytes, at most %d", l.name, i, len(v), l.max)
			}
		}
	}
	for i, a := range s.ACLList {
		if len(a.ACLName) > MaxACLNameLen {
			return Errorf(BadRequest, "acl-list[%d].acl-name: %d bytes, at most %d", i, len(a.ACLName), MaxACLNameLen)
		}
	}
	if n := len(s.Countermeasure); n > MaxCountermeasureLen {
		return Errorf(BadRequest, "levee:countermeasure: %d bytes, at most %d", n, MaxCountermeasureLen)
	}
	if n := len(s.Note); n > MaxNoteLen {
		return Errorf(BadRequest, "levee:note: %d bytes, at most %d", n, MaxNoteLen)
	}
	return nil
}

// String renders a bound for documentation.
func (a AttributeLimit) String() string {
	switch {
	case a.MaxEntries > 0 && a.MaxLen > 0:
		return fmt.Sprintf("%s: at most %d entries of at most %d bytes", a.Name, a.MaxEntries, a.MaxLen)
	case a.MaxEntries > 0:
		return fmt.Sprintf("%s: at most %d entries", a.Name, a.MaxEntries)
	}
	return fmt.Sprintf("%s: at most %d bytes", a.Name, a.MaxLen)
}
