package flowspec

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Operator bits of RFC 8955 §4.2.1.1 (numeric_op) and §4.2.1.2
// (bitmask_op).
const (
	opEnd   = 0x80 // e: last {op, value} pair of the component
	opAnd   = 0x40 // a: AND with the previous pair (else OR)
	opLen2  = 0x10 // len = 01: 2-octet value
	opLen4  = 0x20 // len = 10: 4-octet value
	opLT    = 0x04 // numeric lt
	opGT    = 0x02 // numeric gt
	opEQ    = 0x01 // numeric eq
	opNot   = 0x02 // bitmask not
	opMatch = 0x01 // bitmask m
)

// NLRI returns the Flow Specification NLRI of m: the length (one octet if
// below 240, else two octets 0xFnnn) and the components in ascending type
// order. The output depends only on m: the values of a component keep the
// order of its slice. It fails when Validate does.
func (m Match) NLRI() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	body := m.body()
	n := len(body)
	switch {
	case n > maxNLRILen:
		return nil, fmt.Errorf("flowspec: rule is %d octets, more than the %d an NLRI can carry", n, maxNLRILen)
	case n < 0xf0:
		return append([]byte{byte(n)}, body...), nil
	default:
		return append([]byte{0xf0 | byte(n>>8), byte(n)}, body...), nil
	}
}

// body encodes the components of m without the length. m must pass check.
func (m Match) body() []byte {
	v6 := m.Family() == IPv6
	b := make([]byte, 0, 64)
	b = appendPrefix(b, typeDst, m.Destination, v6)
	if m.Source.IsValid() {
		b = appendPrefix(b, typeSrc, m.Source, v6)
	}
	for _, c := range m.components() {
		if c.bits {
			b = appendBitmask(b, c.typ, c.terms)
		} else {
			b = appendNumeric(b, c.typ, c.ranges)
		}
	}
	return b
}

// appendPrefix writes <type, length, [offset,] prefix octets>; IPv6 (RFC
// 8956 §3.1) has a prefix offset, always 0 here.
func appendPrefix(b []byte, typ uint8, p netip.Prefix, v6 bool) []byte {
	p = p.Masked()
	b = append(b, typ, byte(p.Bits()))
	if v6 {
		b = append(b, 0)
	}
	return append(b, p.Addr().AsSlice()[:(p.Bits()+7)/8]...)
}

// appendValue writes op, with its len bits set, and v in the smallest of 1,
// 2 or 4 octets that holds it.
func appendValue(b []byte, op byte, v uint32) []byte {
	switch {
	case v <= 0xff:
		return append(b, op, byte(v))
	case v <= 0xffff:
		return append(b, op|opLen2, byte(v>>8), byte(v))
	default:
		return append(b, op|opLen4, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// appendNumeric writes the ranges as ORed items: "eq v" for a single value,
// "ge lo" AND "le hi" for a range (AND binds tighter than OR, RFC 8955
// §4.2.1.1). The last operator gets the e bit.
func appendNumeric(b []byte, typ uint8, ranges []Range) []byte {
	if len(ranges) == 0 {
		return b
	}
	b = append(b, typ)
	last := 0
	for _, r := range ranges {
		if r.Lo == r.Hi {
			last = len(b)
			b = appendValue(b, opEQ, r.Lo)
			continue
		}
		b = appendValue(b, opGT|opEQ, r.Lo)
		last = len(b)
		b = appendValue(b, opAnd|opLT|opEQ, r.Hi)
	}
	b[last] |= opEnd
	return b
}

// appendBitmask writes the terms as given, each bitmask in 1 octet or, for
// bits above 0xff, 2 octets. The last operator gets the e bit.
func appendBitmask(b []byte, typ uint8, terms []BitTerm) []byte {
	if len(terms) == 0 {
		return b
	}
	b = append(b, typ)
	last := 0
	for _, t := range terms {
		var op byte
		if t.And {
			op |= opAnd
		}
		if t.Not {
			op |= opNot
		}
		if t.Match {
			op |= opMatch
		}
		last = len(b)
		b = appendValue(b, op, uint32(t.Bits))
	}
	b[last] |= opEnd
	return b
}

// String returns a canonical text form of m, one keyword and value list per
// component in type order, for example
//
//	dst 203.0.113.10/32 proto =6 dport =80,>=8000&<=8080 tcp-flags =syn&!ack
//
// A range is "=v" or ">=lo&<=hi" and ranges are separated by ","; a
// bitmask term is [",", "&"] ["!"] ["="] bits, with bits named (fin syn rst
// psh ack urg ece cwr; df isf ff lf), joined by "|", unnamed ones in hex.
// Prefixes are shown masked, so equal rules have equal strings.
func (m Match) String() string {
	var sb strings.Builder
	sb.WriteString("dst ")
	sb.WriteString(prefixString(m.Destination))
	if m.Source != (netip.Prefix{}) {
		sb.WriteString(" src ")
		sb.WriteString(prefixString(m.Source))
	}
	for _, c := range m.components() {
		if len(c.ranges) == 0 && len(c.terms) == 0 {
			continue
		}
		sb.WriteByte(' ')
		sb.WriteString(c.name)
		sb.WriteByte(' ')
		for i, r := range c.ranges {
			if i > 0 {
				sb.WriteByte(',')
			}
			if r.Lo == r.Hi {
				sb.WriteString("=" + strconv.FormatUint(uint64(r.Lo), 10))
			} else {
				fmt.Fprintf(&sb, ">=%d&<=%d", r.Lo, r.Hi)
			}
		}
		for i, t := range c.terms {
			switch {
			case t.And:
				sb.WriteByte('&')
			case i > 0:
				sb.WriteByte(',')
			}
			if t.Not {
				sb.WriteByte('!')
			}
			if t.Match {
				sb.WriteByte('=')
			}
			sb.WriteString(bitsString(t.Bits, c.names))
		}
	}
	return sb.String()
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return "invalid"
	}
	return p.Masked().String()
}

func bitsString(bits uint16, names []string) string {
	if bits == 0 {
		return "0"
	}
	var parts []string
	for i, name := range names {
		if bits&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	if rest := bits &^ (1<<len(names) - 1); rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(parts, "|")
}
