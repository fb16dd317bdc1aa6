package bgp

import (
	"bytes"
	"math"

	"github.com/levee-dots/levee/flowspec"
)

// The order in which a router applies FlowSpec rules (RFC 8955 §5.1): the
// components are compared in type order; a rule with a component of a
// lower type where the other has a higher one or none comes first; for
// prefixes (types 1 and 2) the lower value of the common prefix length
// comes first, and with equal values the longer prefix; for other
// components the octets (operators and values) compared as a string, the
// lower first, and with one a prefix of the other the longer. IPv6
// prefixes are compared the same way (RFC 8956 §3.8.1: the offsets here
// are always 0).

// fsComponent is one component of an encoded rule: a prefix (bits and its
// pattern octets) or a list of operator and value octets.
type fsComponent struct {
	typ  uint8
	bits int // prefix components: prefix length
	data []byte
}

// components splits the NLRI of m into its components (m must be valid).
func components(m flowspec.Match) []fsComponent {
	raw, err := m.NLRI()
	if err != nil || len(raw) == 0 {
		return nil
	}
	body := raw[1:]
	if raw[0] >= 0xf0 {
		body = raw[2:]
	}
	v6 := m.Family() == flowspec.IPv6
	var out []fsComponent
	for len(body) > 0 {
		c := fsComponent{typ: body[0]}
		body = body[1:]
		if c.typ == 1 || c.typ == 2 {
			c.bits = int(body[0])
			body = body[1:]
			if v6 {
				body = body[1:] // offset, 0
			}
			n := (c.bits + 7) / 8
			c.data, body = body[:n], body[n:]
		} else {
			i := 0
			for i < len(body) {
				op := body[i]
				i += 1 + 1<<((op>>4)&3)
				if op&0x80 != 0 {
					break
				}
			}
			c.data, body = body[:i], body[i:]
		}
		out = append(out, c)
	}
	return out
}

// flowCompare is negative when a router applies a before b, positive when
// b before a, 0 when neither has precedence (the same rule).
func flowCompare(a, b flowspec.Match) int {
	ca, cb := components(a), components(b)
	for i := 0; i < len(ca) || i < len(cb); i++ {
		ta, tb := math.MaxInt, math.MaxInt // end of list
		if i < len(ca) {
			ta = int(ca[i].typ)
		}
		if i < len(cb) {
			tb = int(cb[i].typ)
		}
		switch {
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		x, y := ca[i], cb[i]
		if x.typ == 1 || x.typ == 2 {
			if c := comparePrefixBits(x.data, y.data, min(x.bits, y.bits)); c != 0 {
				return c
			}
			if x.bits != y.bits {
				return cmpLonger(x.bits, y.bits)
			}
			continue
		}
		n := min(len(x.data), len(y.data))
		if c := bytes.Compare(x.data[:n], y.data[:n]); c != 0 {
			return c
		}
		if len(x.data) != len(y.data) {
			return cmpLonger(len(x.data), len(y.data))
		}
	}
	return 0
}

// cmpLonger puts the longer first.
func cmpLonger(x, y int) int {
	if x > y {
		return -1
	}
	return 1
}

// comparePrefixBits compares the first bits bits of a and b.
func comparePrefixBits(a, b []byte, bits int) int {
	full := bits / 8
	if c := bytes.Compare(a[:full], b[:full]); c != 0 {
		return c
	}
	if rest := bits % 8; rest > 0 {
		mask := byte(0xff << (8 - rest))
		x, y := a[full]&mask, b[full]&mask
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

// mayOverlap reports whether some packet could match both a and b. It is
// false only when a component both have is disjoint (prefixes that do not
// overlap, numeric components without a common value); bitmask
// components are not compared.
func mayOverlap(a, b flowspec.Match) bool {
	if !a.Destination.Masked().Overlaps(b.Destination.Masked()) {
		return false
	}
	if a.Source.IsValid() && b.Source.IsValid() && !a.Source.Masked().Overlaps(b.Source.Masked()) {
		return false
	}
	for _, p := range [][2][]flowspec.Range{
		{a.Protocols, b.Protocols}, {a.Ports, b.Ports}, {a.DstPorts, b.DstPorts}, {a.SrcPorts, b.SrcPorts},
		{a.ICMPTypes, b.ICMPTypes}, {a.ICMPCodes, b.ICMPCodes}, {a.PacketLengths, b.PacketLengths},
		{a.DSCP, b.DSCP}, {a.FlowLabels, b.FlowLabels},
	} {
		if len(p[0]) > 0 && len(p[1]) > 0 && !rangesMeet(p[0], p[1]) {
			return false
		}
	}
	return true
}

func rangesMeet(xs, ys []flowspec.Range) bool {
	for _, x := range xs {
		for _, y := range ys {
			if x.Lo <= y.Hi && y.Lo <= x.Hi {
				return true
			}
		}
	}
	return false
}
