package dots

import (
	"fmt"
	"slices"
	"testing"
)

// The groups of TestParseTargetURI are named by the sentence of RFC 9132
// §4.4.1.1 they check: "the IP addresses to which the host subcomponent of
// authority component of a URI resolves represent the 'target-prefix', the
// URI scheme represents the 'target-protocol', the port subcomponent of
// authority component of a URI represents the 'target-port-range'. If the
// optional port information is not present in the authority component,
// the default port defined for the URI scheme represents the
// 'target-port'."
func TestParseTargetURI(t *testing.T) {
	type want struct {
		host      string
		protocols []uint32 // nil: any
		port      int      // -1: any
	}
	groups := []struct {
		rule  string
		cases map[string]want
	}{
		{"the host subcomponent of authority component of a URI resolves represent the target-prefix", map[string]want{
			"https://203.0.113.5/login":         {"203.0.113.5", []uint32{6}, 443},
			"https://[2001:db8:6401::1]/":       {"2001:db8:6401::1", []uint32{6}, 443},
			"http://www.example.com/index.html": {"www.example.com", []uint32{6}, 80},
			"https://user@www.example.com/":     {"www.example.com", []uint32{6}, 443},
		}},
		{"the URI scheme represents the target-protocol", map[string]want{
			"https://www.example.com/":     {"www.example.com", []uint32{6}, 443},
			"HTTPS://www.example.com/":     {"www.example.com", []uint32{6}, 443},
			"coap://203.0.113.5/sensor":    {"203.0.113.5", []uint32{17}, 5683},
			"coaps://203.0.113.5/":         {"203.0.113.5", []uint32{17}, 5684},
			"coaps+tcp://203.0.113.5/":     {"203.0.113.5", []uint32{6}, 5684},
			"wss://chat.example.com/feed":  {"chat.example.com", []uint32{6}, 443},
			"ftp://files.example.com/pub/": {"files.example.com", []uint32{6}, 21},
		}},
		{"the port subcomponent of authority component of a URI represents the target-port-range", map[string]want{
			"https://www.example.com:8443/":   {"www.example.com", []uint32{6}, 8443},
			"http://[2001:db8:6401::1]:8080/": {"2001:db8:6401::1", []uint32{6}, 8080},
			"coap://203.0.113.5:61616/":       {"203.0.113.5", []uint32{17}, 61616},
			"https://www.example.com:0/":      {"www.example.com", []uint32{6}, 0},
		}},
		{"if the optional port information is not present in the authority component the default port defined for the URI scheme represents the target-port", map[string]want{
			"https://www.example.com":  {"www.example.com", []uint32{6}, 443},
			"https://www.example.com:": {"www.example.com", []uint32{6}, 443},
			"http://www.example.com/":  {"www.example.com", []uint32{6}, 80},
			"ws://www.example.com/":    {"www.example.com", []uint32{6}, 80},
			"coaps+ws://203.0.113.5/":  {"203.0.113.5", []uint32{6}, 443},
		}},
		// RFC 9132 names no scheme: one Levee does not know is accepted and
		// leaves what it cannot tell open.
		{"a scheme without a known transport or default port leaves them open", map[string]want{
			"gopher+x://203.0.113.5/":     {"203.0.113.5", nil, -1},
			"gopher+x://203.0.113.5:7070": {"203.0.113.5", nil, 7070},
		}},
	}
	for _, g := range groups {
		t.Run(g.rule, func(t *testing.T) {
			for uri, w := range g.cases {
				got, err := ParseTargetURI(uri)
				if err != nil {
					t.Errorf("%s: %v", uri, err)
					continue
				}
				port := -1
				if got.Port != nil {
					port = int(*got.Port)
				}
				if got.Host != w.host || !slices.Equal(got.Protocols, w.protocols) || (got.Protocols == nil) != (w.protocols == nil) || port != w.port {
					t.Errorf("%s: host %q protocols %v port %d, want %q %v %d", uri, got.Host, got.Protocols, port, w.host, w.protocols, w.port)
				}
			}
		})
	}
}

func TestParseTargetURIRefuses(t *testing.T) {
	for _, uri := range []string{
		"www.example.com",                // not absolute
		"https:///path",                  // no host
		"https://www.example.com:65536/", // not a port number
		"https://www.example.com:99999999999999999999/",
		"https://www.example.com:8x/",
		"mailto:abuse@example.com",
	} {
		_, err := ParseTargetURI(uri)
		if CodeOf(err) != BadRequest {
			t.Errorf("%s: error %v, want 4.00", uri, err)
		}
		m := req(func(s *Scope) { s.TargetPrefix = nil; s.TargetURI = []string{uri} })
		if _, err := ParseMitigationRequest(m); CodeOf(err) != BadRequest {
			t.Errorf("ParseMitigationRequest with target-uri %s: error %v, want 4.00", uri, err)
		}
	}
}

// TestScopeFilter: a target-uri adds its port and its scheme's protocols
// to the scope's target-port-range and target-protocol, as RFC 9132
// §4.4.1.1 appends the values of an alias; other targets that asked for
// every port or protocol keep asking for them.
func TestScopeFilter(t *testing.T) {
	pr := func(lo uint16, hi ...uint16) PortRange {
		r := PortRange{LowerPort: lo}
		if len(hi) > 0 {
			r.UpperPort = Ptr(hi[0])
		}
		return r
	}
	tests := []struct {
		name      string
		scope     Scope
		ports     []PortRange // nil: any
		protocols []uint32    // nil: any
	}{
		{"no target-uri: the scope's own lists",
			Scope{TargetPrefix: []string{"203.0.113.0/29"}, TargetPortRange: []PortRange{pr(53)}, TargetProtocol: []uint32{17}},
			[]PortRange{pr(53)}, []uint32{17}},
		{"no target-uri and no lists: any",
			Scope{TargetPrefix: []string{"203.0.113.0/29"}}, nil, nil},
		{"https without a port means TCP port 443",
			Scope{TargetURI: []string{"https://www.example.com/"}}, []PortRange{pr(443)}, []uint32{6}},
		{"an explicit port overrides the scheme default",
			Scope{TargetURI: []string{"https://www.example.com:8443/"}}, []PortRange{pr(8443)}, []uint32{6}},
		{"two URIs add both",
			Scope{TargetURI: []string{"http://www.example.com/", "coap://203.0.113.5/"}}, []PortRange{pr(80), pr(5683)}, []uint32{6, 17}},
		{"the URI's values are appended to target-port-range and target-protocol",
			Scope{TargetURI: []string{"https://www.example.com/"}, TargetPortRange: []PortRange{pr(8443)}, TargetProtocol: []uint32{17}},
			[]PortRange{pr(8443), pr(443)}, []uint32{17, 6}},
		{"a port inside a range given is not added again",
			Scope{TargetURI: []string{"http://www.example.com/"}, TargetPortRange: []PortRange{pr(1, 1023)}, TargetProtocol: []uint32{6}},
			[]PortRange{pr(1, 1023)}, []uint32{6}},
		{"a prefix asking for every port keeps every port",
			Scope{TargetPrefix: []string{"203.0.113.0/29"}, TargetURI: []string{"https://www.example.com/"}}, nil, nil},
		{"a prefix with ports gains the URI's",
			Scope{TargetPrefix: []string{"203.0.113.0/29"}, TargetPortRange: []PortRange{pr(80)}, TargetProtocol: []uint32{6},
				TargetURI: []string{"https://www.example.com/"}},
			[]PortRange{pr(80), pr(443)}, []uint32{6}},
		{"an unknown scheme without a port opens both",
			Scope{TargetURI: []string{"https://www.example.com/", "gopher+x://203.0.113.5/"}}, nil, nil},
		{"an unknown scheme with a port opens the protocol",
			Scope{TargetURI: []string{"gopher+x://203.0.113.5:7070/"}}, []PortRange{pr(7070)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := scopeText(tc.scope)
			ports, protocols := tc.scope.Filter()
			if portsText(ports) != portsText(tc.ports) || (ports == nil) != (tc.ports == nil) {
				t.Errorf("ports %s, want %s", portsText(ports), portsText(tc.ports))
			}
			if !slices.Equal(protocols, tc.protocols) || (protocols == nil) != (tc.protocols == nil) {
				t.Errorf("protocols %v, want %v", protocols, tc.protocols)
			}
			if scopeText(tc.scope) != before {
				t.Errorf("Filter changed the scope: %s, was %s", scopeText(tc.scope), before)
			}
		})
	}
}

func portsText(ports []PortRange) string {
	if ports == nil {
		return "any"
	}
	s := "["
	for _, p := range ports {
		s += fmt.Sprint(" ", p.LowerPort)
		if p.UpperPort != nil {
			s += fmt.Sprint("-", *p.UpperPort)
		}
	}
	return s + " ]"
}

func scopeText(s Scope) string {
	return fmt.Sprint(s.TargetPrefix, s.TargetURI, portsText(s.TargetPortRange), s.TargetProtocol)
}
