package bgp

import (
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"testing"

	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/flowspec"
)

var (
	aclDst4  = netip.MustParsePrefix("203.0.113.0/24")
	aclDst6  = netip.MustParsePrefix("2001:db8:6401::/48")
	aclOwned = []netip.Prefix{aclDst4, aclDst6}
)

func dropFrom(dst, src string) divert.Filter {
	return divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix(dst), Source: netip.MustParsePrefix(src)},
		Action: flowspec.Action{Kind: flowspec.Discard}}
}

// synLimit is RFC 8783 Appendix B.2's SYN rate-limit: TCP with the SYN bit
// set (flags-bitmask 2, operator match), at rate bytes/s.
func synLimit(dst string, rate float32) divert.Filter {
	return divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix(dst), Protocols: []flowspec.Range{{Lo: 6, Hi: 6}},
		TCPFlags: []flowspec.BitTerm{{Bits: flowspec.TCPSyn, Match: true}}}, Action: flowspec.Action{Kind: flowspec.RateLimit, RateBytes: rate}}
}

func aclDiversion(cuid, name string, filters ...divert.Filter) divert.Diversion {
	return divert.Diversion{Key: divert.Key{CUID: cuid, ACL: name}, Domain: "beta", Prefixes: aclOwned, Filters: filters}
}

// onWire renders a route as "family NLRI-hex ext-community-hex".
func onWire(t *testing.T, r *route) string {
	t.Helper()
	nlri, err := r.path.Nlri.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	var ext []string
	for _, a := range r.path.Attrs {
		if ec, ok := a.(*gbgp.PathAttributeExtendedCommunities); ok {
			for _, c := range ec.Value {
				b, err := c.Serialize()
				if err != nil {
					t.Fatal(err)
				}
				ext = append(ext, hex.EncodeToString(b))
			}
		}
	}
	return familyName(r.family) + " " + hex.EncodeToString(nlri) + " " + strings.Join(ext, ",")
}

// TestACLPlan: each drop or rate-limit entry of an ACL becomes one FlowSpec
// rule in the family of its destination, with the entry's action as
// traffic-rate-bytes (RFC 8955 §4 and §7.3, RFC 8956 §3); accept entries
// become none and the note says why. The wire form is written out from
// the RFCs' encodings.
func TestACLPlan(t *testing.T) {
	accept := dropFrom("203.0.113.0/24", "198.51.100.0/24")
	accept.Accept, accept.Action = true, flowspec.Action{}
	for _, tc := range []struct {
		name    string
		filters []divert.Filter
		want    []string // "kind family text"
		wire    []string // onWire, in plan order
		note    string
	}{
		{name: "drop a source prefix", filters: []divert.Filter{dropFrom("203.0.113.0/24", "192.0.2.0/24")},
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.0/24 src 192.0.2.0/24} discard"},
			// len 10: type 1 /24 203.0.113, type 2 /24 192.0.2; traffic-rate-bytes 0.
			wire: []string{"ipv4-flowspec 0a0118cb00710218c00002 8006000000000000"}},
		{name: "SYN rate limit", filters: []divert.Filter{synLimit("203.0.113.0/24", 20)},
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.0/24 proto =6 tcp-flags =syn} rate-limit 20"},
			// type 3 {e|eq 6}, type 9 {e|m 0x02}; traffic-rate-bytes 20.0 (float32 0x41a00000).
			wire: []string{"ipv4-flowspec 0b0118cb0071038106098102 8006000041a00000"}},
		{name: "IPv6 entry goes to IPv6 FlowSpec", filters: []divert.Filter{dropFrom("2001:db8:6401::/48", "2001:db8:bad::/48")},
			want: []string{"flowspec ipv6-flowspec {dst 2001:db8:6401::/48 src 2001:db8:bad::/48} discard"},
			// RFC 8956 §3.1: type, length, offset 0, 6 octets of prefix.
			wire: []string{"ipv6-flowspec 12013000" + "20010db86401" + "023000" + "20010db80bad 8006000000000000"}},
		{name: "destination inside a wider owned prefix", filters: []divert.Filter{dropFrom("203.0.113.128/25", "192.0.2.0/24")},
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.128/25 src 192.0.2.0/24} discard"}},
		{name: "accept entries announce nothing", filters: []divert.Filter{accept, dropFrom("203.0.113.0/24", "192.0.2.0/24")},
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.0/24 src 192.0.2.0/24} discard"},
			note: "accept entries 1 {dst 203.0.113.0/24 src 198.51.100.0/24} not enforced by FlowSpec: routers order FlowSpec rules by their components (RFC 8955 §5.1)"},
		{name: "only accept entries", filters: []divert.Filter{accept}, note: "accept-list cannot be expressed as FlowSpec rules"},
		{name: "overlapping entries applied out of the ACL's order", filters: []divert.Filter{synLimit("203.0.113.0/24", 20), dropFrom("203.0.113.0/24", "192.0.2.0/24")},
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.0/24 proto =6 tcp-flags =syn} rate-limit 20",
				"flowspec ipv4-flowspec {dst 203.0.113.0/24 src 192.0.2.0/24} discard"},
			note: "where entries overlap, routers apply their rules in RFC 8955 §5.1 order, not the ACL's: entry 2 before entry 1"},
		{name: "the same match twice: the first decides", filters: []divert.Filter{dropFrom("203.0.113.0/24", "192.0.2.0/24"),
			func() divert.Filter {
				f := synLimit("203.0.113.0/24", 20)
				f.Match = dropFrom("203.0.113.0/24", "192.0.2.0/24").Match
				return f
			}()},
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.0/24 src 192.0.2.0/24} discard"},
			note: "entries 2 (the match of entry 1) announce nothing: an earlier entry has the same match and decides first"},
		{name: "a drop after an accept of the same match", filters: []divert.Filter{accept, func() divert.Filter {
			f := accept
			f.Accept = false
			f.Action = flowspec.Action{Kind: flowspec.Discard}
			return f
		}()},
			note: "entries 2 (the match of entry 1) announce nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backend{cfg: baseConfig()}
			b.cfg.Neighbors = []Neighbor{{Name: "edge1", Address: "192.0.2.11", PeerAS: 65000}}
			if err := b.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			d := aclDiversion("beta", "acl1", tc.filters...)
			if err := b.Check(d); err != nil {
				t.Fatalf("Check: %v", err)
			}
			got, p := planned(t, b, d)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("routes\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			for i, w := range tc.wire {
				if g := onWire(t, p.routes[i]); g != w {
					t.Errorf("route %d on the wire %s, want %s", i, g, w)
				}
			}
			if !strings.Contains(p.note, tc.note) {
				t.Fatalf("note %q, want it to contain %q", p.note, tc.note)
			}
		})
	}
}

// TestACLRefused: an ACL with one entry the backend must not announce is
// refused whole by Check and by Apply's plan, naming the entry.
func TestACLRefused(t *testing.T) {
	redirect := dropFrom("203.0.113.0/24", "192.0.2.0/24")
	redirect.Action = flowspec.Action{Kind: flowspec.RedirectVRF, RouteTarget: "65000:666"}
	noAction := dropFrom("203.0.113.0/24", "192.0.2.0/24")
	noAction.Action = flowspec.Action{}
	zeroRate := synLimit("203.0.113.0/24", 0)
	wide := aclDiversion("beta", "acl1", dropFrom("203.0.0.0/20", "192.0.2.0/24"))
	wide.Prefixes = []netip.Prefix{netip.MustParsePrefix("203.0.0.0/16")}
	for _, tc := range []struct {
		name string
		d    divert.Diversion
		want string
	}{
		{"destination not carried", aclDiversion("beta", "acl1", dropFrom("203.0.113.0/24", "192.0.2.0/24"), dropFrom("198.51.100.0/24", "192.0.2.0/24")),
			"entry 2 {dst 198.51.100.0/24 src 192.0.2.0/24}: destination 198.51.100.0/24 is not inside the diversion's prefixes"},
		{"destination wider than the owned prefix", aclDiversion("beta", "acl1", dropFrom("203.0.112.0/23", "192.0.2.0/24")),
			"destination 203.0.112.0/23 is not inside"},
		{"IPv6 destination, IPv4 prefixes only", divert.Diversion{Key: divert.Key{CUID: "beta", ACL: "acl1"}, Domain: "beta",
			Prefixes: []netip.Prefix{aclDst4}, Filters: []divert.Filter{dropFrom("2001:db8:6401::/48", "2001:db8:bad::/48")}},
			"destination 2001:db8:6401::/48 is not inside"},
		{"no prefixes", divert.Diversion{Key: divert.Key{CUID: "beta", ACL: "acl1"}, Domain: "beta",
			Filters: []divert.Filter{dropFrom("203.0.113.0/24", "192.0.2.0/24")}}, "is not inside the diversion's prefixes []"},
		{"shorter than the shortest diverted prefix", wide, "destination 203.0.0.0/20 is shorter than /24"},
		{"redirect is not an ACL action", aclDiversion("beta", "acl1", redirect), "action redirect-vrf 65000:666"},
		{"no action", aclDiversion("beta", "acl1", noAction), "no action"},
		{"rate-limit 0", aclDiversion("beta", "acl1", zeroRate), "want a finite rate above 0"},
		{"no destination", aclDiversion("beta", "acl1", divert.Filter{Action: flowspec.Action{Kind: flowspec.Discard}}), "destination prefix is required"},
		{"source of another family", aclDiversion("beta", "acl1", dropFrom("203.0.113.0/24", "2001:db8:bad::/48")), "is not of the ipv4 family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backend{cfg: baseConfig()}
			b.cfg.Neighbors = []Neighbor{{Name: "edge1", Address: "192.0.2.11", PeerAS: 65000}}
			if err := b.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			err := b.Check(tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestACLDoesNotChangeMitigations: a mitigation's plan is what it was, and
// a mitigation and an ACL asking for the same rule plan the same route id
// (so they share one route).
func TestACLDoesNotChangeMitigations(t *testing.T) {
	b := &Backend{cfg: baseConfig()}
	b.cfg.Neighbors = []Neighbor{{Name: "edge1", Address: "192.0.2.11", PeerAS: 65000}}
	if err := b.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mit := divert.Diversion{Key: divert.Key{CUID: "beta", MID: 1}, Domain: "beta", Protocols: []uint8{17},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}
	got, mp := planned(t, b, mit)
	if want := []string{"flowspec ipv4-flowspec {dst 203.0.113.10/32 proto =17} discard"}; !slices.Equal(got, want) {
		t.Fatalf("mitigation routes %v, want %v", got, want)
	}
	acl := aclDiversion("beta", "acl1", divert.Filter{Match: flowspec.Match{Destination: netip.MustParsePrefix("203.0.113.10/32"),
		Protocols: []flowspec.Range{{Lo: 17, Hi: 17}}}, Action: flowspec.Action{Kind: flowspec.Discard}})
	_, ap := planned(t, b, acl)
	if len(ap.routes) != 1 || ap.routes[0].id != mp.routes[0].id {
		t.Fatalf("ACL route ids %v, want the mitigation's %q", ap.routes, mp.routes[0].id)
	}
	if isACL(mit) || !isACL(acl) {
		t.Fatal("isACL")
	}
}

// TestACLOrderNotes: the order note names only overlapping entries with
// different actions that routers apply out of the ACL's order.
func TestACLOrderNotes(t *testing.T) {
	b := &Backend{cfg: baseConfig()}
	b.cfg.Neighbors = []Neighbor{{Name: "edge1", Address: "192.0.2.11", PeerAS: 65000}}
	if err := b.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		filters []divert.Filter
	}{
		{"same action", []divert.Filter{func() divert.Filter {
			f := synLimit("203.0.113.0/24", 20)
			f.Action = flowspec.Action{Kind: flowspec.Discard}
			return f
		}(),
			dropFrom("203.0.113.0/24", "192.0.2.0/24")}},
		{"disjoint destinations", []divert.Filter{synLimit("203.0.113.0/25", 20), dropFrom("203.0.113.128/25", "192.0.2.0/24")}},
		{"already in FlowSpec order", []divert.Filter{dropFrom("203.0.113.0/24", "192.0.2.0/24"), synLimit("203.0.113.0/24", 20)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, p := planned(t, b, aclDiversion("beta", "acl1", tc.filters...))
			if strings.Contains(p.note, "order") {
				t.Fatalf("note %q", p.note)
			}
		})
	}
}

func match(dst, src string, protos ...uint32) flowspec.Match {
	m := flowspec.Match{Destination: netip.MustParsePrefix(dst)}
	if src != "" {
		m.Source = netip.MustParsePrefix(src)
	}
	for _, p := range protos {
		m.Protocols = append(m.Protocols, flowspec.Range{Lo: p, Hi: p})
	}
	return m
}

// TestFlowCompare: the precedence of RFC 8955 §5.1, case by case.
func TestFlowCompare(t *testing.T) {
	withPorts := func(m flowspec.Match, ports ...flowspec.Range) flowspec.Match { m.DstPorts = ports; return m }
	for _, tc := range []struct {
		name string
		a, b flowspec.Match
		want int
	}{
		{"lower component type first", match("203.0.113.0/24", "192.0.2.0/24"), match("203.0.113.0/24", "", 6), -1},
		{"lower destination first", match("192.0.2.0/24", ""), match("198.51.100.0/24", ""), -1},
		{"equal common prefix: longer first", match("203.0.113.128/25", ""), match("203.0.113.0/24", ""), -1},
		{"lower value in the last partial octet first", match("203.0.113.0/25", ""), match("203.0.113.128/25", ""), -1},
		{"a component where the other has none first", match("203.0.113.0/24", ""), match("203.0.113.0/24", "", 6), 1},
		{"lower octets first", match("203.0.113.0/24", "", 6), match("203.0.113.0/24", "", 17), -1},
		{"operators count: =6 (81 06) after =6,=17 (01 06 81 11)", match("203.0.113.0/24", "", 6), match("203.0.113.0/24", "", 6, 17), 1},
		{"ports: =80 (81 50) after =80,=443 (01 50 91 01 bb)", withPorts(match("203.0.113.0/24", ""), flowspec.Range{Lo: 80, Hi: 80}),
			withPorts(match("203.0.113.0/24", ""), flowspec.Range{Lo: 80, Hi: 80}, flowspec.Range{Lo: 443, Hi: 443}), 1},
		{"IPv6: lower /48 first", match("2001:db8:6401::/48", ""), match("2001:db8:6400::/48", ""), 1},
		{"IPv6: source decides", match("2001:db8:6401::/48", "2001:db8:bad::/48"), match("2001:db8:6401::/48", "2001:db8:bac::/48"), 1},
		{"the same rule", match("203.0.113.0/24", "192.0.2.0/24", 6), match("203.0.113.0/24", "192.0.2.0/24", 6), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := flowCompare(tc.a, tc.b); got != tc.want {
				t.Errorf("flowCompare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := flowCompare(tc.b, tc.a); got != -tc.want {
				t.Errorf("flowCompare(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}

func TestMayOverlap(t *testing.T) {
	ports := func(m flowspec.Match, lo, hi uint32) flowspec.Match {
		m.DstPorts = []flowspec.Range{{Lo: lo, Hi: hi}}
		return m
	}
	syn := synLimit("203.0.113.0/24", 20).Match
	for _, tc := range []struct {
		name string
		a, b flowspec.Match
		want bool
	}{
		{"disjoint destinations", match("203.0.113.0/25", ""), match("203.0.113.128/25", ""), false},
		{"nested destinations", match("203.0.113.0/24", ""), match("203.0.113.128/25", ""), true},
		{"disjoint sources", match("203.0.113.0/24", "192.0.2.0/24"), match("203.0.113.0/24", "198.51.100.0/24"), false},
		{"a source and none", match("203.0.113.0/24", "192.0.2.0/24"), match("203.0.113.0/24", ""), true},
		{"other protocols", match("203.0.113.0/24", "", 6), match("203.0.113.0/24", "", 17), false},
		{"a common protocol", match("203.0.113.0/24", "", 6, 17), match("203.0.113.0/24", "", 17), true},
		{"disjoint port ranges", ports(match("203.0.113.0/24", ""), 80, 80), ports(match("203.0.113.0/24", ""), 1000, 2000), false},
		{"overlapping port ranges", ports(match("203.0.113.0/24", ""), 80, 1000), ports(match("203.0.113.0/24", ""), 1000, 2000), true},
		{"TCP flags are not compared", syn, match("203.0.113.0/24", "", 6), true},
		{"IPv4 and IPv6", match("203.0.113.0/24", ""), match("2001:db8:6401::/48", ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayOverlap(tc.a, tc.b); got != tc.want {
				t.Errorf("mayOverlap(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := mayOverlap(tc.b, tc.a); got != tc.want {
				t.Errorf("mayOverlap(%s, %s) = %v, want %v", tc.b, tc.a, got, tc.want)
			}
		})
	}
}
