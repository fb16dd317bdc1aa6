package flowspec

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/levee-dots/levee/dots"
)

// Family is the address family of a rule: IPv4 (RFC 8955, AFI 1) or IPv6
// (RFC 8956, AFI 2), both with SAFI 133.
type Family uint8

// Address families; the values are the IP version numbers.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4", "ipv6" or "family(N)".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// Range is an inclusive range of values of a numeric component. Lo == Hi is
// a single value.
type Range struct{ Lo, Hi uint32 }

// BitTerm is one {bitmask_op, bitmask} pair of a bitmask component (RFC 8955
// §4.2.1.2). Without Match a term is true when any of Bits is set in the
// packet, with Match when all of them are; Not negates the result. And
// combines the term with the previous one by AND instead of OR; it must be
// false on the first term.
type BitTerm struct {
	Bits            uint16
	Not, Match, And bool
}

// TCP flag bits of component type 9, as in octet 14 of the TCP header. A
// term may also use the 12 low bits of octets 13–14 (2-octet form).
const (
	TCPFin uint16 = 0x01
	TCPSyn uint16 = 0x02
	TCPRst uint16 = 0x04
	TCPPsh uint16 = 0x08
	TCPAck uint16 = 0x10
	TCPUrg uint16 = 0x20
	TCPEce uint16 = 0x40
	TCPCwr uint16 = 0x80
)

// Fragment bits of component type 12 (RFC 8955 §4.2.2.12). FragDF does not
// exist in IPv6 (RFC 8956 §3.6).
const (
	FragDF  uint16 = 0x01 // Don't Fragment
	FragIsF uint16 = 0x02 // Is a Fragment (other than the first)
	FragFF  uint16 = 0x04 // First Fragment
	FragLF  uint16 = 0x08 // Last Fragment
)

// Match is the match part of one Flow Specification rule. Every non-empty
// field becomes one component; the values inside a component are ORed, the
// components are ANDed. Prefixes are used masked (host bits ignored).
type Match struct {
	Destination   netip.Prefix // type 1, required
	Source        netip.Prefix // type 2; zero value: any
	Protocols     []Range      // type 3 (IPv6: upper-layer protocol)
	Ports         []Range      // type 4, source or destination port
	DstPorts      []Range      // type 5
	SrcPorts      []Range      // type 6
	ICMPTypes     []Range      // type 7
	ICMPCodes     []Range      // type 8
	TCPFlags      []BitTerm    // type 9
	PacketLengths []Range      // type 10
	DSCP          []Range      // type 11
	Fragments     []BitTerm    // type 12
	FlowLabels    []Range      // type 13, IPv6 only
}

// Component type codes (IANA "Flow Spec Component Types").
const (
	typeDst uint8 = iota + 1
	typeSrc
	typeProto
	typePort
	typeDstPort
	typeSrcPort
	typeICMPType
	typeICMPCode
	typeTCPFlags
	typePktLen
	typeDSCP
	typeFragment
	typeFlowLabel
)

// maxNLRILen is the largest NLRI length the 0xFnnn form can carry.
const maxNLRILen = 0xfff

// component describes one numeric (ranges) or bitmask (terms) component of
// m, in the order of component types.
type component struct {
	typ    uint8
	name   string // keyword in String
	ranges []Range
	max    uint32 // numeric: largest value the field holds
	bits   bool   // bitmask component
	terms  []BitTerm
	valid  uint16   // bitmask: bits a term may use
	names  []string // bitmask: names of bits 0x01, 0x02, ... in String
}

var (
	tcpNames  = []string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"}
	fragNames = []string{"df", "isf", "ff", "lf"}
)

// components lists the components of types 3 to 13 of m in type order,
// including empty ones.
func (m Match) components() [11]component {
	frag := FragDF | FragIsF | FragFF | FragLF
	if m.Family() == IPv6 {
		frag &^= FragDF
	}
	return [11]component{
		{typ: typeProto, name: "proto", ranges: m.Protocols, max: 0xff},
		{typ: typePort, name: "port", ranges: m.Ports, max: 0xffff},
		{typ: typeDstPort, name: "dport", ranges: m.DstPorts, max: 0xffff},
		{typ: typeSrcPort, name: "sport", ranges: m.SrcPorts, max: 0xffff},
		{typ: typeICMPType, name: "icmp-type", ranges: m.ICMPTypes, max: 0xff},
		{typ: typeICMPCode, name: "icmp-code", ranges: m.ICMPCodes, max: 0xff},
		{typ: typeTCPFlags, name: "tcp-flags", bits: true, terms: m.TCPFlags, valid: 0x0fff, names: tcpNames},
		{typ: typePktLen, name: "len", ranges: m.PacketLengths, max: 0xffff},
		{typ: typeDSCP, name: "dscp", ranges: m.DSCP, max: 0x3f},
		{typ: typeFragment, name: "frag", bits: true, terms: m.Fragments, valid: frag, names: fragNames},
		{typ: typeFlowLabel, name: "flow-label", ranges: m.FlowLabels, max: 0xfffff},
	}
}

// Family returns the family of the destination prefix, or 0 when it is not
// valid. An IPv4-mapped IPv6 prefix is IPv6.
func (m Match) Family() Family {
	switch {
	case !m.Destination.IsValid():
		return 0
	case m.Destination.Addr().Is4():
		return IPv4
	default:
		return IPv6
	}
}

// Validate reports whether m can be encoded: a valid destination prefix, a
// source prefix of the same family if any, the flow label only for IPv6,
// fragment DF only for IPv4, values that fit their fields (protocol, ICMP
// type and code 8 bits; ports and packet length 16 bits; DSCP 6 bits; flow
// label 20 bits; TCP flags 12 bits; fragment 4 bits), Lo <= Hi in every
// range, no AND on the first bitmask term, and an NLRI of at most 4095
// octets. Validate returns nil exactly when NLRI succeeds.
func (m Match) Validate() error {
	if err := m.check(); err != nil {
		return err
	}
	if n := len(m.body()); n > maxNLRILen {
		return fmt.Errorf("flowspec: rule is %d octets, more than the %d an NLRI can carry", n, maxNLRILen)
	}
	return nil
}

func (m Match) check() error {
	f := m.Family()
	if f == 0 {
		return errors.New("flowspec: destination prefix is required")
	}
	if m.Source != (netip.Prefix{}) {
		if !m.Source.IsValid() {
			return errors.New("flowspec: invalid source prefix")
		}
		if m.Source.Addr().Is4() != (f == IPv4) {
			return fmt.Errorf("flowspec: source %s is not of the %s family of destination %s", m.Source, f, m.Destination)
		}
	}
	if f == IPv4 && len(m.FlowLabels) > 0 {
		return errors.New("flowspec: flow label (type 13) exists only in IPv6")
	}
	for _, c := range m.components() {
		for _, r := range c.ranges {
			if r.Lo > r.Hi {
				return fmt.Errorf("flowspec: %s range %d-%d is reversed", c.name, r.Lo, r.Hi)
			}
			if r.Hi > c.max {
				return fmt.Errorf("flowspec: %s value %d exceeds %d", c.name, r.Hi, c.max)
			}
		}
		for i, t := range c.terms {
			if i == 0 && t.And {
				return fmt.Errorf("flowspec: first %s term cannot be ANDed (RFC 8955 §4.2.1.2)", c.name)
			}
			if bad := t.Bits &^ c.valid; bad != 0 {
				if c.typ == typeFragment && bad == FragDF {
					return errors.New("flowspec: fragment DF does not exist in IPv6 (RFC 8956 §3.6)")
				}
				return fmt.Errorf("flowspec: %s bits %#x are not defined", c.name, bad)
			}
		}
	}
	return nil
}

// FromScope builds one Match per target prefix of a DOTS mitigation scope:
// the protocols become component 3 and the port ranges component 5, since
// DOTS targets are destinations. An empty list leaves its component out
// (any). Each Match gets its own slices. Prefixes are not checked here: call
// Validate on the result.
func FromScope(prefixes []netip.Prefix, ports []dots.PortRange, protocols []uint8) []Match {
	out := make([]Match, 0, len(prefixes))
	for _, p := range prefixes {
		m := Match{Destination: p}
		for _, proto := range protocols {
			m.Protocols = append(m.Protocols, Range{uint32(proto), uint32(proto)})
		}
		for _, pr := range ports {
			r := Range{uint32(pr.LowerPort), uint32(pr.LowerPort)}
			if pr.UpperPort != nil {
				r.Hi = uint32(*pr.UpperPort)
			}
			m.DstPorts = append(m.DstPorts, r)
		}
		out = append(out, m)
	}
	return out
}
