package dots

import (
	"net/url"
	"slices"
	"strconv"
)

// IANA protocol numbers of the transports the known URI schemes run on.
const (
	protoTCP = 6
	protoUDP = 17
)

// uriScheme is what a URI scheme says about the resources it names: the
// transport protocols and the default port (RFC 3986 §3.2.3: "The type of
// port designated by the port number (e.g., TCP, UDP, SCTP) is defined by
// the URI scheme").
type uriScheme struct {
	protocols []uint32
	port      uint16
}

// uriSchemes are the schemes whose defining documents give a transport and
// a default port.
var uriSchemes = map[string]uriScheme{
	"http":      {[]uint32{protoTCP}, 80},   // RFC 9110 §4.2.1
	"https":     {[]uint32{protoTCP}, 443},  // RFC 9110 §4.2.2
	"ws":        {[]uint32{protoTCP}, 80},   // RFC 6455 §3
	"wss":       {[]uint32{protoTCP}, 443},  // RFC 6455 §3
	"coap":      {[]uint32{protoUDP}, 5683}, // RFC 7252 §6.1
	"coaps":     {[]uint32{protoUDP}, 5684}, // RFC 7252 §6.2
	"coap+tcp":  {[]uint32{protoTCP}, 5683}, // RFC 8323 §8.1
	"coaps+tcp": {[]uint32{protoTCP}, 5684}, // RFC 8323 §8.2
	"coap+ws":   {[]uint32{protoTCP}, 80},   // RFC 8323 §8.3
	"coaps+ws":  {[]uint32{protoTCP}, 443},  // RFC 8323 §8.4
	"ftp":       {[]uint32{protoTCP}, 21},   // RFC 1738 §3.2
	"telnet":    {[]uint32{protoTCP}, 23},   // RFC 4248
	"ldap":      {[]uint32{protoTCP}, 389},  // RFC 4516
	"imap":      {[]uint32{protoTCP}, 143},  // RFC 5092
	"pop":       {[]uint32{protoTCP}, 110},  // RFC 2384
	"rtsp":      {[]uint32{protoTCP}, 554},  // RFC 7826
	"rtsps":     {[]uint32{protoTCP}, 322},  // RFC 7826
}

// URITarget is what one target-uri stands for. RFC 9132 §4.4.1.1: the
// addresses to which the URI's host resolves represent the target-prefix,
// its scheme the target-protocol and the port of its authority the
// target-port-range; without a port, the scheme's default port.
type URITarget struct {
	Host string // an IP literal or a name to resolve
	// Protocols are the transports of the scheme; nil when Levee does not
	// know the scheme, which then covers every protocol.
	Protocols []uint32
	// Port is the authority's port, else the scheme's default; nil when the
	// URI has no port and Levee does not know the scheme: every port.
	Port *uint16
}

// ParseTargetURI maps a target-uri to its host, protocols and port. A URI
// that is not absolute, has no host or has a port above 65535 is a 4.00.
// RFC 9132 names no schemes: any scheme is accepted, and one Levee does
// not know leaves the protocol (and, without a port, the port) open rather
// than refuse a request the RFC allows or narrow it by a guess.
func ParseTargetURI(s string) (URITarget, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Hostname() == "" {
		return URITarget{}, Errorf(BadRequest, "target-uri %q is not an absolute URI with a host", s)
	}
	t := URITarget{Host: u.Hostname()}
	scheme, known := uriSchemes[u.Scheme] // url.Parse lower-cases the scheme (RFC 3986 §3.1)
	if known {
		t.Protocols = slices.Clone(scheme.protocols)
		t.Port = Ptr(scheme.port)
	}
	if p := u.Port(); p != "" { // RFC 3986 §6.2.3: an empty port is the default
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return URITarget{}, Errorf(BadRequest, "target-uri %q: port %s is not a port number", s, p)
		}
		t.Port = Ptr(uint16(n))
	}
	return t, nil
}

// URIHost returns the host part of a target-uri.
func URIHost(s string) (string, error) {
	t, err := ParseTargetURI(s)
	return t.Host, err
}

// Filter returns the ports and protocols the scope covers, nil meaning
// any: its target-port-range and target-protocol with the port and the
// protocols of each target-uri added (RFC 9132 §4.4.1.1, which treats a
// URI like an alias whose values are appended to the scope's). A list the
// scope leaves empty while it names other targets (target-prefix,
// target-fqdn, alias-name) stays empty: those targets asked for every port
// or protocol, and a URI beside them must not narrow that. A URI whose
// port or protocol is open (URITarget) opens the list too.
func (s *Scope) Filter() (ports []PortRange, protocols []uint32) {
	if len(s.TargetURI) == 0 {
		return s.TargetPortRange, s.TargetProtocol
	}
	others := len(s.TargetPrefix)+len(s.TargetFQDN)+len(s.AliasName) > 0
	anyPort := others && len(s.TargetPortRange) == 0
	anyProto := others && len(s.TargetProtocol) == 0
	ports, protocols = slices.Clone(s.TargetPortRange), slices.Clone(s.TargetProtocol)
	for _, raw := range s.TargetURI {
		t, err := ParseTargetURI(raw)
		if err != nil {
			continue // ParseMitigationRequest refuses it
		}
		if t.Port == nil {
			anyPort = true
		} else if !portCovered(ports, *t.Port) {
			ports = append(ports, PortRange{LowerPort: *t.Port})
		}
		if t.Protocols == nil {
			anyProto = true
		}
		for _, p := range t.Protocols {
			if !slices.Contains(protocols, p) {
				protocols = append(protocols, p)
			}
		}
	}
	if anyPort {
		ports = nil
	}
	if anyProto {
		protocols = nil
	}
	return ports, protocols
}

func portCovered(ranges []PortRange, port uint16) bool {
	for _, r := range ranges {
		upper := r.LowerPort
		if r.UpperPort != nil {
			upper = *r.UpperPort
		}
		if r.LowerPort <= port && port <= upper {
			return true
		}
	}
	return false
}
