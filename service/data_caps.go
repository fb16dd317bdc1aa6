package service

import "github.com/levee-dots/levee/dots/data"

// DataCapabilities says what this server enforces of the data channel's
// filters (RFC 8783 §7.1): exactly what Filters turns into Flow
// Specification rules; the fields it refuses are absent.
func (s *Service) DataCapabilities() *data.Capabilities {
	t := func() *bool { v := true; return &v }
	return &data.Capabilities{
		AddressFamily:      []string{"ipv4", "ipv6"},
		ForwardingActions:  []data.Forwarding{data.Drop, data.Accept},
		RateLimit:          t(),
		TransportProtocols: []data.Protocol{protoICMP, protoTCP, protoUDP, protoICMPv6},
		IPv4:               &data.IPv4Caps{DSCP: t(), Length: t(), Protocol: t(), SourcePrefix: t(), DestinationPrefix: t(), Fragment: t()},
		IPv6:               &data.IPv6Caps{DSCP: t(), Length: t(), Protocol: t(), DestinationPrefix: t(), SourcePrefix: t(), FlowLabel: t(), Fragment: t()},
		TCP:                &data.TCPCaps{Flags: t(), FlagsBitmask: t(), SourcePort: t(), DestinationPort: t(), PortRange: t()},
		UDP:                &data.UDPCaps{SourcePort: t(), DestinationPort: t(), PortRange: t()},
		ICMP:               &data.ICMPCaps{Type: t(), Code: t()},
	}
}
