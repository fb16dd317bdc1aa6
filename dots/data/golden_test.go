package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/levee-dots/levee/dots"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameJSON compares two JSON texts as values.
func sameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("round trip differs:\n got %s\nwant %s", got, want)
	}
}

// TestGoldenACLs decodes the RFC 8783 examples (§7.2 Figures 24 and 25,
// §7.3 fragment and tcp-flags examples, Appendix B SYN rate-limit), checks
// the decoded values, and encodes them back to the same JSON.
func TestGoldenACLs(t *testing.T) {
	for _, tc := range []struct {
		file  string
		check func(t *testing.T, a *ACLs)
	}{
		{"acl-sample-ipv4.json", func(t *testing.T, a *ACLs) {
			acl := a.ACL[0]
			m := acl.ACEs.ACE[0].Matches.IPv4
			if acl.Name != "sample-ipv4-acl" || acl.Type != IPv4ACLType || acl.Activation() != ActivateWhenMitigating ||
				m.Destination.String() != "198.51.100.0/24" || m.Source.String() != "192.0.2.0/24" ||
				acl.ACEs.ACE[0].Actions.Forwarding != Drop {
				t.Errorf("decoded %+v", acl)
			}
		}},
		{"acl-ipv6-udp.json", func(t *testing.T, a *ACLs) {
			e := a.ACL[0].ACEs.ACE[0]
			if *e.Matches.IPv6.FlowLabel != 10000 || *e.Matches.IPv6.Protocol != 17 ||
				*e.Matches.UDP.SourcePort.Operator != LTE || *e.Matches.UDP.SourcePort.Port != 80 ||
				*e.Matches.UDP.DestinationPort.Operator != NEQ || e.Actions.Forwarding != Accept {
				t.Errorf("decoded %+v", e)
			}
		}},
		{"acl-fragment-ipv4.json", func(t *testing.T, a *ACLs) {
			f := a.ACL[0].ACEs.ACE[0].Matches.IPv4.Fragment
			if !f.Operator.Has("match") || !f.Type.Has("isf") || a.ACL[0].ActivationType != nil {
				t.Errorf("decoded %+v", f)
			}
		}},
		{"acl-fragment-ipv6.json", func(t *testing.T, a *ACLs) {
			if f := a.ACL[0].ACEs.ACE[0].Matches.IPv6.Fragment; !f.Type.Has("isf") {
				t.Errorf("decoded %+v", f)
			}
		}},
		{"acl-tcp-flags.json", func(t *testing.T, a *ACLs) {
			fb := a.ACL[0].ACEs.ACE[0].Matches.TCP.FlagsBitmask
			if fb.Bitmask != 4095 || !fb.Operator.Has("not") || !fb.Operator.Has("any") || fb.Operator.Has("match") {
				t.Errorf("decoded %+v", fb)
			}
		}},
		{"acl-syn-rate-limit.json", func(t *testing.T, a *ACLs) {
			e := a.ACL[0].ACEs.ACE[0]
			if e.Matches.TCP.FlagsBitmask.Bitmask != 2 || e.Actions.RateLimit == nil || *e.Actions.RateLimit != dots.Decimal(2000) {
				t.Errorf("decoded %+v", e.Actions)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in := readFile(t, tc.file)
			a, err := DecodeACLs(in, Request)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, a)
			out, err := EncodeACLs(a)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, out, in)
		})
	}
}

func TestGoldenAliasAndClient(t *testing.T) {
	in := readFile(t, "alias-https1.json")
	a, err := DecodeAliases(in, Request)
	if err != nil {
		t.Fatal(err)
	}
	al := a.Alias[0]
	if al.Name != "https1" || len(al.TargetPrefix) != 2 || al.TargetPrefix[1].String() != "2001:db8:6401::2/128" ||
		al.TargetProtocol[0] != 6 || al.TargetPortRange[0].LowerPort != 443 || al.TargetPortRange[0].UpperPort != nil {
		t.Errorf("decoded %+v", al)
	}
	out, err := EncodeAliases(a)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, out, in)

	in = readFile(t, "register.json")
	c, err := DecodeClient(in, Request)
	if err != nil {
		t.Fatal(err)
	}
	if c.CUID != "dz6pHjaADkaFTbjr0JGBpw" || c.CDID != "" {
		t.Errorf("decoded %+v", c)
	}
	out, err = EncodeClients([]DotsClient{*c})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, out, in)
}

// TestNonconfigAnswer: a content=nonconfig answer (RFC 8783 §7.3, Figure
// 31) carries pending-lifetime and no aces; it decodes as a Response and is
// refused as a Request.
func TestNonconfigAnswer(t *testing.T) {
	in := readFile(t, "acl-nonconfig-answer.json")
	a, err := DecodeACLs(in, Response)
	if err != nil {
		t.Fatal(err)
	}
	if *a.ACL[0].PendingLifetime != 9080 {
		t.Errorf("pending-lifetime %v", a.ACL[0].PendingLifetime)
	}
	out, err := EncodeACLs(a)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, out, in)
	if _, err := DecodeACLs(in, Request); err == nil || AsError(err).Path != `/ietf-dots-data-channel:acls/acl[name="test-acl-ipv6-udp"]/pending-lifetime` {
		t.Errorf("request with pending-lifetime: %v", err)
	}
}

func TestCapabilitiesRoundTrip(t *testing.T) {
	yes := true
	c := &Capabilities{AddressFamily: []string{"ipv4", "ipv6"}, ForwardingActions: []Forwarding{Drop, Accept},
		RateLimit: &yes, TransportProtocols: []Protocol{1, 6, 17, 58},
		IPv4: &IPv4Caps{DestinationPrefix: &yes}, TCP: &TCPCaps{FlagsBitmask: &yes}}
	b, err := EncodeCapabilities(c)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, b, []byte(`{"ietf-dots-data-channel:capabilities":{"address-family":["ipv4","ipv6"],
		"forwarding-actions":["drop","accept"],"rate-limit":true,"transport-protocols":[1,6,17,58],
		"ipv4":{"destination-prefix":true},"tcp":{"flags-bitmask":true}}}`))
	got, err := DecodeCapabilities(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("decoded %+v", got)
	}
}
