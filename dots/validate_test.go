package dots

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// req builds a one-scope mitigation request; mod edits the scope.
func req(mod func(s *Scope)) *Message {
	s := Scope{TargetPrefix: []string{"203.0.113.0/24"}, Lifetime: Ptr[int64](3600)}
	if mod != nil {
		mod(&s)
	}
	return &Message{MitigationScope: &MitigationScope{Scope: []Scope{s}}}
}

func TestParseMitigationRequestErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  *Message
		diag string
	}{
		{"nil message", nil, "mitigation-scope"},
		{"no mitigation-scope", &Message{Heartbeat: &Heartbeat{PeerHBStatus: Ptr(true)}}, "mitigation-scope"},
		{"extra container", &Message{MitigationScope: req(nil).MitigationScope, SignalConfig: &SignalConfig{}}, "nothing else"},
		{"no scope", &Message{MitigationScope: &MitigationScope{}}, "got 0"},
		{"two scopes", &Message{MitigationScope: &MitigationScope{Scope: []Scope{
			req(nil).MitigationScope.Scope[0], req(nil).MitigationScope.Scope[0]}}}, "got 2"},
		{"missing lifetime", req(func(s *Scope) { s.Lifetime = nil }), "lifetime"},
		{"lifetime 0", req(func(s *Scope) { s.Lifetime = Ptr[int64](0) }), "lifetime"},
		{"lifetime -2", req(func(s *Scope) { s.Lifetime = Ptr[int64](-2) }), "lifetime -2"},
		{"no target", req(func(s *Scope) { s.TargetPrefix = nil; s.TargetPortRange = []PortRange{{LowerPort: 80}} }), "target"},
		{"mid in body", req(func(s *Scope) { s.MID = Ptr[uint32](123) }), "mid"},
		{"status in body", req(func(s *Scope) { s.Status = Ptr(StatusInProgress) }), "status"},
		{"mitigation-start in body", req(func(s *Scope) { s.MitigationStart = Ptr[U64](1) }), "mitigation-start"},
		{"conflict-information in body", req(func(s *Scope) { s.ConflictInformation = &ConflictInformation{} }), "conflict-information"},
		{"counter in body", req(func(s *Scope) { s.PpsDropped = Ptr[U64](1) }), "counters"},
		{"loopback 127.0.0.1/32", req(func(s *Scope) { s.TargetPrefix = []string{"127.0.0.1/32"} }), "loopback"},
		{"loopback ::1/128", req(func(s *Scope) { s.TargetPrefix = []string{"::1/128"} }), "loopback"},
		{"multicast 224.0.0.1/32", req(func(s *Scope) { s.TargetPrefix = []string{"224.0.0.1/32"} }), "multicast"},
		{"multicast ff02::1/128", req(func(s *Scope) { s.TargetPrefix = []string{"ff02::1/128"} }), "multicast"},
		{"broadcast 255.255.255.255/32", req(func(s *Scope) { s.TargetPrefix = []string{"255.255.255.255/32"} }), "broadcast"},
		{"0.0.0.0/0 covers loopback", req(func(s *Scope) { s.TargetPrefix = []string{"0.0.0.0/0"} }), "0.0.0.0/0"},
		{"::/0 covers loopback", req(func(s *Scope) { s.TargetPrefix = []string{"::/0"} }), "::/0"},
		{"126.0.0.0/7 covers loopback", req(func(s *Scope) { s.TargetPrefix = []string{"126.0.0.0/7"} }), "loopback"},
		{"240.0.0.0/4 covers broadcast", req(func(s *Scope) { s.TargetPrefix = []string{"240.0.0.0/4"} }), "broadcast"},
		{"unspecified 0.0.0.0/32", req(func(s *Scope) { s.TargetPrefix = []string{"0.0.0.0/32"} }), "unspecified"},
		{"IPv4-mapped IPv6", req(func(s *Scope) { s.TargetPrefix = []string{"::ffff:203.0.113.1/128"} }), "IPv4-mapped"},
		{"bad prefix text", req(func(s *Scope) { s.TargetPrefix = []string{"not-a-prefix"} }), "not-a-prefix"},
		{"prefix without length", req(func(s *Scope) { s.TargetPrefix = []string{"203.0.113.1"} }), "203.0.113.1"},
		{"prefix length too long", req(func(s *Scope) { s.TargetPrefix = []string{"203.0.113.0/33"} }), "/33"},
		{"second prefix bad", req(func(s *Scope) { s.TargetPrefix = append(s.TargetPrefix, "127.0.0.0/8") }), "127.0.0.0/8"},
		{"upper < lower port", req(func(s *Scope) {
			s.TargetPortRange = []PortRange{{LowerPort: 443, UpperPort: Ptr[uint16](80)}}
		}), "upper-port 80"},
		{"protocol 256", req(func(s *Scope) { s.TargetProtocol = []uint32{6, 256} }), "256"},
		{"bad fqdn", req(func(s *Scope) { s.TargetFQDN = []string{"-bad-.example.com"} }), "target-fqdn"},
		{"fqdn with empty label", req(func(s *Scope) { s.TargetFQDN = []string{"a..example"} }), "target-fqdn"},
		{"fqdn with space", req(func(s *Scope) { s.TargetFQDN = []string{"www example.com"} }), "target-fqdn"},
		{"fqdn label too long", req(func(s *Scope) { s.TargetFQDN = []string{strings.Repeat("a", 64) + ".example"} }), "target-fqdn"},
		{"uri without host", req(func(s *Scope) { s.TargetURI = []string{"https:///index.html"} }), "target-uri"},
		{"uri without scheme", req(func(s *Scope) { s.TargetURI = []string{"www.example.com/x"} }), "target-uri"},
		{"urn", req(func(s *Scope) { s.TargetURI = []string{"urn:isbn:0451450523"} }), "target-uri"},
		{"empty alias", req(func(s *Scope) { s.AliasName = []string{""} }), "alias-name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseMitigationRequest(tc.msg)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if pe.Code != BadRequest || pe.Diag == "" {
				t.Errorf("code %v diag %q", pe.Code, pe.Diag)
			}
			if !strings.Contains(pe.Diag, tc.diag) {
				t.Errorf("diagnostic %q does not mention %q", pe.Diag, tc.diag)
			}
		})
	}
}

func TestParseMitigationRequestAccepts(t *testing.T) {
	tests := []struct {
		name     string
		msg      *Message
		lifetime int64
		prefixes []string
		trigger  bool
	}{
		{"plain", req(nil), 3600, []string{"203.0.113.0/24"}, true},
		{"lifetime -1 (indefinite)", req(func(s *Scope) { s.Lifetime = Ptr[int64](-1) }), -1, []string{"203.0.113.0/24"}, true},
		{"non-canonical prefix is masked", req(func(s *Scope) { s.TargetPrefix = []string{"203.0.113.5/24"} }),
			3600, []string{"203.0.113.0/24"}, true},
		{"IPv6 prefixes", req(func(s *Scope) { s.TargetPrefix = []string{"2001:db8:6401::1/128", "2001:db8:6401::2/64"} }),
			3600, []string{"2001:db8:6401::1/128", "2001:db8:6401::/64"}, true},
		{"fqdn and uri", req(func(s *Scope) {
			s.TargetPrefix = nil
			s.TargetFQDN = []string{"www.example.com", "example.org.", "_srv.example.net"}
			s.TargetURI = []string{"https://www.example.com/index.html", "http://[2001:db8::1]:8080/"}
		}), 3600, nil, true},
		{"alias only", req(func(s *Scope) { s.TargetPrefix = nil; s.AliasName = []string{"https1"} }), 3600, nil, true},
		{"ports and protocols", req(func(s *Scope) {
			s.TargetPortRange = []PortRange{{LowerPort: 80}, {LowerPort: 1000, UpperPort: Ptr[uint16](2000)}, {LowerPort: 53, UpperPort: Ptr[uint16](53)}}
			s.TargetProtocol = []uint32{0, 6, 17, 255}
		}), 3600, []string{"203.0.113.0/24"}, true},
		{"trigger-mitigation false", req(func(s *Scope) { s.TriggerMitigation = Ptr(false) }), 3600, []string{"203.0.113.0/24"}, false},
		{"trigger-mitigation true", req(func(s *Scope) { s.TriggerMitigation = Ptr(true) }), 3600, []string{"203.0.113.0/24"}, true},
		{"efficacy update without lifetime", req(func(s *Scope) { s.Lifetime = nil; s.AttackStatus = Ptr(AttackUnderAttack) }),
			0, []string{"203.0.113.0/24"}, true},
		{"max uint32 lifetime", req(func(s *Scope) { s.Lifetime = Ptr[int64](4294967295) }), 4294967295, []string{"203.0.113.0/24"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseMitigationRequest(tc.msg)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if r.Lifetime != tc.lifetime {
				t.Errorf("lifetime %d, want %d", r.Lifetime, tc.lifetime)
			}
			if r.Trigger != tc.trigger {
				t.Errorf("trigger %v, want %v", r.Trigger, tc.trigger)
			}
			if len(r.Prefixes) != len(tc.prefixes) {
				t.Fatalf("prefixes %v, want %v", r.Prefixes, tc.prefixes)
			}
			for i, p := range tc.prefixes {
				if r.Prefixes[i] != netip.MustParsePrefix(p) {
					t.Errorf("prefix %d: %v, want %s", i, r.Prefixes[i], p)
				}
			}
			if want := tc.msg.MitigationScope.Scope[0]; len(r.Scope.TargetPrefix) != len(want.TargetPrefix) {
				t.Errorf("Scope not kept as sent: %+v", r.Scope)
			}
		})
	}
}

// TestParseMitigationRequestGolden validates the RFC's Figure 7 request and
// refuses the server-side Figure 10 and 14 bodies.
func TestParseMitigationRequestGolden(t *testing.T) {
	decode := func(name string) *Message {
		m, err := Decode(readHex(t, "testdata/golden/"+name+".hex"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	r, err := ParseMitigationRequest(decode("fig07_mitigation_request"))
	if err != nil {
		t.Fatalf("Figure 7: %v", err)
	}
	if r.Lifetime != 3600 || len(r.Prefixes) != 2 || !r.Trigger {
		t.Errorf("Figure 7: %+v", r)
	}
	if _, err := ParseMitigationRequest(decode("fig16_efficacy_update")); err != nil {
		t.Errorf("Figure 16: %v", err)
	}
	for _, name := range []string{"fig10_mitigation_response", "fig14_get_response", "fig27_heartbeat"} {
		if _, err := ParseMitigationRequest(decode(name)); CodeOf(err) != BadRequest {
			t.Errorf("%s: %v, want 4.00", name, err)
		}
	}
}

func TestParseTargetPrefix(t *testing.T) {
	good := map[string]string{
		"203.0.113.5/24":     "203.0.113.0/24",
		"198.51.100.7/32":    "198.51.100.7/32",
		"2001:db8::5/32":     "2001:db8::/32",
		"128.0.0.0/2":        "128.0.0.0/2",
		"1.0.0.0/8":          "1.0.0.0/8",
		"2001:db8:6401::/48": "2001:db8:6401::/48",
	}
	for in, want := range good {
		p, err := ParseTargetPrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseTargetPrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "/24", "203.0.113.0/-1", "fe80::1%eth0/128", "0.0.0.0/1", "::/1", "ff00::/8", "239.255.255.255/32"} {
		if p, err := ParseTargetPrefix(in); CodeOf(err) != BadRequest {
			t.Errorf("ParseTargetPrefix(%q) = %v, %v; want 4.00", in, p, err)
		}
	}
}

func TestValidFQDN(t *testing.T) {
	for _, n := range []string{"example.com", "example.com.", "a", "x-1.example", strings.Repeat("a", 63) + ".b"} {
		if !ValidFQDN(n) {
			t.Errorf("ValidFQDN(%q) = false", n)
		}
	}
	long := strings.Repeat(strings.Repeat("a", 50)+".", 6) // 306 characters
	for _, n := range []string{"", ".", "a..b", "-a.b", "a-.b", "exa mple.com", "bücher.example", long} {
		if ValidFQDN(n) {
			t.Errorf("ValidFQDN(%q) = true", n)
		}
	}
}

func TestURIHost(t *testing.T) {
	good := map[string]string{
		"https://www.example.com/a":  "www.example.com",
		"http://[2001:db8::1]:8080/": "2001:db8::1",
		"coaps://203.0.113.1":        "203.0.113.1",
	}
	for in, want := range good {
		if got, err := URIHost(in); err != nil || got != want {
			t.Errorf("URIHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "https:///x", "/relative", "mailto:a@example.com", "http://%zz/"} {
		if got, err := URIHost(in); CodeOf(err) != BadRequest {
			t.Errorf("URIHost(%q) = %q, %v; want 4.00", in, got, err)
		}
	}
}

func TestCUIDFromSPKI(t *testing.T) {
	// printf levee | openssl dgst -sha256 -binary | head -c 16 | basenc --base64url | tr -d =
	const want = "Cp6fWgceARtgbQ95e423ow"
	if got := CUIDFromSPKI([]byte("levee")); got != want {
		t.Errorf("CUIDFromSPKI(levee) = %q, want %q", got, want)
	}
	for _, spki := range [][]byte{nil, []byte("levee"), make([]byte, 300)} {
		c := CUIDFromSPKI(spki)
		if len(c) != 22 || strings.ContainsAny(c, "+/=") {
			t.Errorf("CUIDFromSPKI(%d bytes) = %q: want 22 base64url characters", len(spki), c)
		}
	}
	if CUIDFromSPKI([]byte("levee")) == CUIDFromSPKI([]byte("levee2")) {
		t.Error("different keys give the same cuid")
	}
}
