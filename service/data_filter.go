package service

import (
	"fmt"
	"net/netip"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/flowspec"
)

// Protocol numbers the l4 matches imply.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// Filters converts an ACL into the Flow Specification filters that enforce
// it (RFC 8783 §7.2 matches to RFC 8955/8956 components): one filter per
// ACE and destination, in the ACL's order. dests are the destinations of an
// ACE that names none (the client domain's prefixes). Match fields a
// FlowSpec rule cannot express (ttl, ihl, identification, offset, ecn, the
// IPv4 flags, tcp sequence and acknowledgement numbers, data-offset,
// reserved, window-size, urgent-pointer, options, udp length, icmp
// rest-of-header) are refused: dropping more than the client asked for is
// not an option.
func Filters(acl *data.ACL, dests []netip.Prefix) ([]divert.Filter, error) {
	var out []divert.Filter
	for i := range acl.ACEs.ACE {
		e := &acl.ACEs.ACE[i]
		fs, err := aceFilters(e, dests)
		if err != nil {
			return nil, fmt.Errorf("ace %q: %w", e.Name, err)
		}
		out = append(out, fs...)
	}
	return out, nil
}

func aceFilters(e *data.ACE, dests []netip.Prefix) ([]divert.Filter, error) {
	var base flowspec.Match
	m := &e.Matches
	var proto *uint8
	fam := 0 // 4, 6 or 0 (any)
	var own *data.Prefix
	switch {
	case m.IPv4 != nil:
		v := m.IPv4
		if v.TTL != nil || v.IHL != nil || v.Identification != nil || v.Offset != nil || v.ECN != nil || v.Flags != nil {
			return nil, errUnsupported("ipv4 ttl, ihl, identification, offset, ecn and flags")
		}
		fam, own, proto = 4, v.Destination, v.Protocol
		l3(&base, v.Source, v.DSCP, v.Length, v.Fragment)
	case m.IPv6 != nil:
		v := m.IPv6
		if v.TTL != nil || v.ECN != nil {
			return nil, errUnsupported("ipv6 ttl and ecn")
		}
		fam, own, proto = 6, v.Destination, v.Protocol
		l3(&base, v.Source, v.DSCP, v.Length, v.Fragment)
		if v.FlowLabel != nil {
			base.FlowLabels = []flowspec.Range{one(uint32(*v.FlowLabel))}
		}
	}
	l4proto, err := l4(&base, m)
	if err != nil {
		return nil, err
	}
	if proto != nil {
		if l4proto != 0 && uint32(*proto) != uint32(l4proto) {
			return nil, nil // protocol and l4 match contradict: matches nothing
		}
		base.Protocols = []flowspec.Range{one(uint32(*proto))}
	}
	action, accept := actionOf(&e.Actions)
	targets := dests
	if own != nil {
		targets = []netip.Prefix{own.Masked()}
	}
	var out []divert.Filter
	for _, d := range targets {
		is4 := d.Addr().Is4()
		if fam == 4 && !is4 || fam == 6 && is4 {
			continue
		}
		fm := base
		fm.Destination = d
		if fm.Source.IsValid() && fm.Source.Addr().Is4() != is4 {
			continue
		}
		if l4proto != 0 && proto == nil {
			p := l4proto
			if p == protoICMP && !is4 {
				p = protoICMPv6
			}
			fm.Protocols = []flowspec.Range{one(uint32(p))}
		}
		if !is4 {
			fm.Fragments = dropDF(fm.Fragments)
		}
		out = append(out, divert.Filter{Match: fm, Action: action, Accept: accept})
	}
	return out, nil
}

func errUnsupported(what string) error {
	return fmt.Errorf("%s cannot be enforced by this server (see capabilities)", what)
}

func one(v uint32) flowspec.Range { return flowspec.Range{Lo: v, Hi: v} }

func l3(m *flowspec.Match, src *data.Prefix, dscp *uint8, length *uint16, frag *data.Fragment) {
	if src != nil {
		m.Source = src.Masked()
	}
	if dscp != nil {
		m.DSCP = []flowspec.Range{one(uint32(*dscp))}
	}
	if length != nil {
		m.PacketLengths = []flowspec.Range{one(uint32(*length))}
	}
	if frag != nil {
		var bits uint16
		for _, n := range frag.Type.Names() {
			bits |= map[string]uint16{"df": flowspec.FragDF, "isf": flowspec.FragIsF, "ff": flowspec.FragFF, "lf": flowspec.FragLF}[n]
		}
		m.Fragments = []flowspec.BitTerm{bitTerm(bits, frag.Operator)}
	}
}

// bitTerm is a DOTS operator (RFC 8783 §4.3: not, match, any; match by
// default) as a FlowSpec bitmask term (RFC 8955 §4.2.1.2).
func bitTerm(bits uint16, op *data.Bits) flowspec.BitTerm {
	t := flowspec.BitTerm{Bits: bits, Match: true}
	if op != nil {
		t.Not = op.Has("not")
		t.Match = !op.Has("any")
	}
	return t
}

func dropDF(ts []flowspec.BitTerm) []flowspec.BitTerm {
	for i := range ts {
		ts[i].Bits &^= flowspec.FragDF
	}
	return ts
}

// l4 sets the tcp, udp or icmp components and returns the protocol they
// imply (0 for none).
func l4(m *flowspec.Match, ms *data.Matches) (uint8, error) {
	switch {
	case ms.TCP != nil:
		t := ms.TCP
		if t.SequenceNumber != nil || t.AcknowledgementNumber != nil || t.DataOffset != nil || t.Reserved != nil ||
			t.WindowSize != nil || t.UrgentPointer != nil || t.Options != nil {
			return 0, errUnsupported("tcp sequence-number, acknowledgement-number, data-offset, reserved, window-size, urgent-pointer and options")
		}
		if t.Flags != nil {
			var bits uint16
			for _, n := range t.Flags.Names() {
				bits |= map[string]uint16{"fin": flowspec.TCPFin, "syn": flowspec.TCPSyn, "rst": flowspec.TCPRst, "psh": flowspec.TCPPsh,
					"ack": flowspec.TCPAck, "urg": flowspec.TCPUrg, "ece": flowspec.TCPEce, "cwr": flowspec.TCPCwr}[n]
			}
			m.TCPFlags = []flowspec.BitTerm{{Bits: bits, Match: true}}
		}
		if fb := t.FlagsBitmask; fb != nil {
			m.TCPFlags = []flowspec.BitTerm{bitTerm(fb.Bitmask, fb.Operator)}
		}
		m.SrcPorts, m.DstPorts = ports(t.SourcePort), ports(t.DestinationPort)
		return protoTCP, nil
	case ms.UDP != nil:
		u := ms.UDP
		if u.Length != nil {
			return 0, errUnsupported("udp length")
		}
		m.SrcPorts, m.DstPorts = ports(u.SourcePort), ports(u.DestinationPort)
		return protoUDP, nil
	case ms.ICMP != nil:
		c := ms.ICMP
		if c.RestOfHeader != nil {
			return 0, errUnsupported("icmp rest-of-header")
		}
		if c.Type != nil {
			m.ICMPTypes = []flowspec.Range{one(uint32(*c.Type))}
		}
		if c.Code != nil {
			m.ICMPCodes = []flowspec.Range{one(uint32(*c.Code))}
		}
		return protoICMP, nil
	}
	return 0, nil
}

// ports turns RFC 8519's port-range-or-operator into FlowSpec ranges.
func ports(p *data.PortRangeOrOp) []flowspec.Range {
	if p == nil {
		return nil
	}
	if p.LowerPort != nil {
		return []flowspec.Range{{Lo: uint32(*p.LowerPort), Hi: uint32(*p.UpperPort)}}
	}
	v := uint32(*p.Port)
	op := data.EQ
	if p.Operator != nil {
		op = *p.Operator
	}
	switch op {
	case data.LTE:
		return []flowspec.Range{{Lo: 0, Hi: v}}
	case data.GTE:
		return []flowspec.Range{{Lo: v, Hi: 0xffff}}
	case data.NEQ:
		var out []flowspec.Range
		if v > 0 {
			out = append(out, flowspec.Range{Lo: 0, Hi: v - 1})
		}
		if v < 0xffff {
			out = append(out, flowspec.Range{Lo: v + 1, Hi: 0xffff})
		}
		return out
	}
	return []flowspec.Range{one(v)}
}

// actionOf maps forwarding: drop is discard; accept with a rate-limit is a
// rate limit (bytes per second, RFC 8783 §4.3, the unit of FlowSpec
// traffic-rate-bytes); accept alone lets the traffic through.
func actionOf(a *data.Actions) (flowspec.Action, bool) {
	switch {
	case a.Forwarding == data.Drop:
		return flowspec.Action{Kind: flowspec.Discard}, false
	case a.RateLimit != nil && *a.RateLimit == 0:
		return flowspec.Action{Kind: flowspec.Discard}, false // a rate of 0 is discard (RFC 8955 §7.3)
	case a.RateLimit != nil:
		return flowspec.Action{Kind: flowspec.RateLimit, RateBytes: float32(*a.RateLimit) / 100}, false
	}
	return flowspec.Action{}, true
}
