package data

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/levee-dots/levee/dots"
)

// Module is the YANG module name that qualifies top-level members (RFC 7951 §4).
const Module = "ietf-dots-data-channel"

// DotsData is the root container dots-data (RFC 8783 §4.1).
type DotsData struct {
	DotsClient   []DotsClient  `json:"dots-client,omitempty" lim:"clients"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
}

// DotsClient is one registered DOTS client (RFC 8783 §5) with its aliases
// and ACLs.
type DotsClient struct {
	CUID    string   `json:"cuid" lim:"cuid"`
	CDID    string   `json:"cdid,omitempty" lim:"cdid"`
	Aliases *Aliases `json:"aliases,omitempty"`
	ACLs    *ACLs    `json:"acls,omitempty"`
}

// Aliases is the aliases container (RFC 8783 §6).
type Aliases struct {
	Alias []Alias `json:"alias,omitempty" lim:"aliases"`
}

// Alias names a set of resources (RFC 8783 §6.1).
type Alias struct {
	Name            string      `json:"name" lim:"name"`
	TargetPrefix    []Prefix    `json:"target-prefix,omitempty" lim:"targets"`
	TargetPortRange []PortRange `json:"target-port-range,omitempty" lim:"targets"`
	TargetProtocol  []Protocol  `json:"target-protocol,omitempty" lim:"targets"`
	TargetFQDN      []string    `json:"target-fqdn,omitempty" lim:"targets,fqdn"`
	TargetURI       []string    `json:"target-uri,omitempty" lim:"targets,uri"`
	// PendingLifetime is the remaining lifetime in minutes (config false).
	PendingLifetime *int32 `json:"pending-lifetime,omitempty" nonconfig:""`
}

// PortRange is a target-port-range entry: lower-port and an optional
// upper-port (a single port when absent).
type PortRange struct {
	LowerPort uint16  `json:"lower-port"`
	UpperPort *uint16 `json:"upper-port,omitempty"`
}

// ACLs is the acls container (RFC 8783 §7).
type ACLs struct {
	ACL []ACL `json:"acl,omitempty" lim:"acls"`
}

// ACL is one filtering rule list (RFC 8783 §4.3, RFC 8519 §4.1).
type ACL struct {
	Name           string          `json:"name" lim:"name"`
	Type           ACLType         `json:"type,omitempty"`
	ActivationType *ActivationType `json:"activation-type,omitempty"`
	// PendingLifetime is the remaining lifetime in minutes (config false).
	PendingLifetime *int32 `json:"pending-lifetime,omitempty" nonconfig:""`
	ACEs            ACEs   `json:"aces,omitzero"`
}

// Activation returns the activation type, defaulting to
// activate-when-mitigating (RFC 8783 §4.3).
func (a *ACL) Activation() ActivationType {
	if a.ActivationType == nil {
		return ActivateWhenMitigating
	}
	return *a.ActivationType
}

// ACEs is the aces container.
type ACEs struct {
	ACE []ACE `json:"ace" lim:"aces"`
}

// ACE is one access control entry: matches, actions and statistics.
type ACE struct {
	Name       string      `json:"name" lim:"name"`
	Matches    Matches     `json:"matches,omitempty,omitzero"`
	Actions    Actions     `json:"actions,omitzero"`
	Statistics *Statistics `json:"statistics,omitempty" nonconfig:""`
}

// Matches holds at most one layer-3 (ipv4, ipv6) and one layer-4 (tcp,
// udp, icmp) match.
type Matches struct {
	IPv4 *IPv4Match `json:"ipv4,omitempty"`
	IPv6 *IPv6Match `json:"ipv6,omitempty"`
	TCP  *TCPMatch  `json:"tcp,omitempty"`
	UDP  *UDPMatch  `json:"udp,omitempty"`
	ICMP *ICMPMatch `json:"icmp,omitempty"`
}

// IPv4Match is the ipv4 match of RFC 8519 §4.2 plus fragment (RFC 8783 §4.3).
type IPv4Match struct {
	DSCP           *uint8    `json:"dscp,omitempty"`
	ECN            *uint8    `json:"ecn,omitempty"`
	Length         *uint16   `json:"length,omitempty"`
	TTL            *uint8    `json:"ttl,omitempty"`
	Protocol       *uint8    `json:"protocol,omitempty"`
	IHL            *uint8    `json:"ihl,omitempty"`
	Flags          *Bits     `json:"flags,omitempty"`
	Offset         *uint16   `json:"offset,omitempty"`
	Identification *uint16   `json:"identification,omitempty"`
	Destination    *Prefix   `json:"destination-ipv4-network,omitempty"`
	Source         *Prefix   `json:"source-ipv4-network,omitempty"`
	Fragment       *Fragment `json:"fragment,omitempty"`
}

// IPv6Match is the ipv6 match of RFC 8519 §4.2 plus fragment.
type IPv6Match struct {
	DSCP        *uint8    `json:"dscp,omitempty"`
	ECN         *uint8    `json:"ecn,omitempty"`
	Length      *uint16   `json:"length,omitempty"`
	TTL         *uint8    `json:"ttl,omitempty"`
	Protocol    *uint8    `json:"protocol,omitempty"`
	Destination *Prefix   `json:"destination-ipv6-network,omitempty"`
	Source      *Prefix   `json:"source-ipv6-network,omitempty"`
	FlowLabel   *uint32   `json:"flow-label,omitempty"`
	Fragment    *Fragment `json:"fragment,omitempty"`
}

// Fragment is the DOTS fragment match: operator bits and fragment-type bits.
type Fragment struct {
	Operator *Bits `json:"operator,omitempty"`
	Type     Bits  `json:"type"`
}

// TCPMatch is the tcp match of RFC 8519 plus flags-bitmask and the
// port-range-or-operator containers of RFC 8783.
type TCPMatch struct {
	SequenceNumber        *uint32        `json:"sequence-number,omitempty"`
	AcknowledgementNumber *uint32        `json:"acknowledgement-number,omitempty"`
	DataOffset            *uint8         `json:"data-offset,omitempty"`
	Reserved              *uint8         `json:"reserved,omitempty"`
	Flags                 *Bits          `json:"flags,omitempty"`
	WindowSize            *uint16        `json:"window-size,omitempty"`
	UrgentPointer         *uint16        `json:"urgent-pointer,omitempty"`
	Options               *string        `json:"options,omitempty" lim:"binary"`
	FlagsBitmask          *FlagsBitmask  `json:"flags-bitmask,omitempty"`
	SourcePort            *PortRangeOrOp `json:"source-port-range-or-operator,omitempty"`
	DestinationPort       *PortRangeOrOp `json:"destination-port-range-or-operator,omitempty"`
}

// FlagsBitmask matches the 12 flag bits of the TCP header (RFC 8783 §4.3).
type FlagsBitmask struct {
	Operator *Bits  `json:"operator,omitempty"`
	Bitmask  uint16 `json:"bitmask"`
}

// UDPMatch is the udp match of RFC 8519 with RFC 8783's port containers.
type UDPMatch struct {
	Length          *uint16        `json:"length,omitempty"`
	SourcePort      *PortRangeOrOp `json:"source-port-range-or-operator,omitempty"`
	DestinationPort *PortRangeOrOp `json:"destination-port-range-or-operator,omitempty"`
}

// ICMPMatch is the icmp match of RFC 8519.
type ICMPMatch struct {
	Type         *uint8  `json:"type,omitempty"`
	Code         *uint8  `json:"code,omitempty"`
	RestOfHeader *string `json:"rest-of-header,omitempty" lim:"binary"`
}

// PortRangeOrOp is RFC 8519's port-range-or-operator choice: either a range
// (lower-port, upper-port) or an operator (default eq) and a port.
type PortRangeOrOp struct {
	LowerPort *uint16   `json:"lower-port,omitempty"`
	UpperPort *uint16   `json:"upper-port,omitempty"`
	Operator  *Operator `json:"operator,omitempty"`
	Port      *uint16   `json:"port,omitempty"`
}

// Actions is forwarding plus the DOTS rate-limit (bytes per second).
type Actions struct {
	Forwarding Forwarding    `json:"forwarding"`
	RateLimit  *dots.Decimal `json:"rate-limit,omitempty"`
}

// Statistics are the ACE's matched counters (config false).
type Statistics struct {
	MatchedPackets *Counter64 `json:"matched-packets,omitempty"`
	MatchedOctets  *Counter64 `json:"matched-octets,omitempty"`
}

// Capabilities are what the server supports (RFC 8783 §7.1).
type Capabilities struct {
	AddressFamily      []string     `json:"address-family,omitempty" lim:"caps"`
	ForwardingActions  []Forwarding `json:"forwarding-actions,omitempty" lim:"caps"`
	RateLimit          *bool        `json:"rate-limit,omitempty"`
	TransportProtocols []Protocol   `json:"transport-protocols,omitempty" lim:"caps"`
	IPv4               *IPv4Caps    `json:"ipv4,omitempty"`
	IPv6               *IPv6Caps    `json:"ipv6,omitempty"`
	TCP                *TCPCaps     `json:"tcp,omitempty"`
	UDP                *UDPCaps     `json:"udp,omitempty"`
	ICMP               *ICMPCaps    `json:"icmp,omitempty"`
}

// IPv4Caps are the supported ipv4 match fields.
type IPv4Caps struct {
	DSCP              *bool `json:"dscp,omitempty"`
	ECN               *bool `json:"ecn,omitempty"`
	Length            *bool `json:"length,omitempty"`
	TTL               *bool `json:"ttl,omitempty"`
	Protocol          *bool `json:"protocol,omitempty"`
	IHL               *bool `json:"ihl,omitempty"`
	Flags             *bool `json:"flags,omitempty"`
	Offset            *bool `json:"offset,omitempty"`
	Identification    *bool `json:"identification,omitempty"`
	SourcePrefix      *bool `json:"source-prefix,omitempty"`
	DestinationPrefix *bool `json:"destination-prefix,omitempty"`
	Fragment          *bool `json:"fragment,omitempty"`
}

// IPv6Caps are the supported ipv6 match fields.
type IPv6Caps struct {
	DSCP              *bool `json:"dscp,omitempty"`
	ECN               *bool `json:"ecn,omitempty"`
	Length            *bool `json:"length,omitempty"`
	HopLimit          *bool `json:"hoplimit,omitempty"`
	Protocol          *bool `json:"protocol,omitempty"`
	DestinationPrefix *bool `json:"destination-prefix,omitempty"`
	SourcePrefix      *bool `json:"source-prefix,omitempty"`
	FlowLabel         *bool `json:"flow-label,omitempty"`
	Fragment          *bool `json:"fragment,omitempty"`
}

// TCPCaps are the supported tcp match fields.
type TCPCaps struct {
	SequenceNumber        *bool `json:"sequence-number,omitempty"`
	AcknowledgementNumber *bool `json:"acknowledgement-number,omitempty"`
	DataOffset            *bool `json:"data-offset,omitempty"`
	Reserved              *bool `json:"reserved,omitempty"`
	Flags                 *bool `json:"flags,omitempty"`
	WindowSize            *bool `json:"window-size,omitempty"`
	UrgentPointer         *bool `json:"urgent-pointer,omitempty"`
	Options               *bool `json:"options,omitempty"`
	FlagsBitmask          *bool `json:"flags-bitmask,omitempty"`
	SourcePort            *bool `json:"source-port,omitempty"`
	DestinationPort       *bool `json:"destination-port,omitempty"`
	PortRange             *bool `json:"port-range,omitempty"`
}

// UDPCaps are the supported udp match fields.
type UDPCaps struct {
	Length          *bool `json:"length,omitempty"`
	SourcePort      *bool `json:"source-port,omitempty"`
	DestinationPort *bool `json:"destination-port,omitempty"`
	PortRange       *bool `json:"port-range,omitempty"`
}

// ICMPCaps are the supported icmp match fields.
type ICMPCaps struct {
	Type         *bool `json:"type,omitempty"`
	Code         *bool `json:"code,omitempty"`
	RestOfHeader *bool `json:"rest-of-header,omitempty"`
}

// Prefix is an inet:ip-prefix, e.g. "198.51.100.0/24".
type Prefix struct{ netip.Prefix }

// MarshalText renders the prefix.
func (p Prefix) MarshalText() ([]byte, error) { return []byte(p.Prefix.String()), nil }

// UnmarshalText parses an IPv4 or IPv6 prefix.
func (p *Prefix) UnmarshalText(b []byte) error {
	v, err := netip.ParsePrefix(string(b))
	if err != nil {
		return fmt.Errorf("not an IP prefix: %q", b)
	}
	p.Prefix = v
	return nil
}

// Protocol is a uint8 protocol number; a []Protocol is a JSON array of
// numbers (not base64 as a []uint8 would be).
type Protocol uint8

// MarshalJSON renders the number.
func (p Protocol) MarshalJSON() ([]byte, error) { return strconv.AppendUint(nil, uint64(p), 10), nil }

// Counter64 is a yang:counter64, a JSON string per RFC 7951 §6.1.
type Counter64 uint64

// MarshalJSON renders the string form.
func (c Counter64) MarshalJSON() ([]byte, error) {
	return json.Marshal(strconv.FormatUint(uint64(c), 10))
}

// IPv4Destination returns the ipv4 destination network, if any.
func (m *Matches) IPv4Destination() *Prefix {
	if m.IPv4 == nil {
		return nil
	}
	return m.IPv4.Destination
}

// IPv6Destination returns the ipv6 destination network, if any.
func (m *Matches) IPv6Destination() *Prefix {
	if m.IPv6 == nil {
		return nil
	}
	return m.IPv6.Destination
}
