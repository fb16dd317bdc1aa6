package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
)

// planned renders a plan's routes as "kind family text", sorted.
func planned(t *testing.T, b *Backend, d divert.Diversion) ([]string, *plan) {
	t.Helper()
	p, err := b.plan(d)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	var out []string
	for _, r := range p.routes {
		s := r.kind + " " + familyName(r.family) + " " + r.text
		for _, a := range r.path.Attrs {
			if c, ok := a.(*gbgp.PathAttributeCommunities); ok && slices.Contains(c.Value, communityBlackhole) {
				s += " BLACKHOLE"
			}
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, p
}

// TestNamesNotBlackholed: the addresses that came from names get the
// domain's non-RTBH countermeasure unless names-countermeasure opts in.
func TestNamesNotBlackholed(t *testing.T) {
	direct, named := netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("203.0.113.20/32")
	both := divert.Diversion{Prefixes: []netip.Prefix{direct, named}, FromNames: []netip.Prefix{named}}
	with := func(d divert.Diversion, edit func(*divert.Diversion)) divert.Diversion {
		d.Prefixes, d.FromNames = slices.Clone(d.Prefixes), slices.Clone(d.FromNames)
		edit(&d)
		return d
	}
	for _, tc := range []struct {
		name   string
		domain DomainPolicy
		def    DomainPolicy
		d      divert.Diversion
		want   []string
		note   string
	}{
		{name: "rtbh domain: names get flowspec", domain: DomainPolicy{RTBH: true, Countermeasure: "rtbh"}, d: both,
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.20/32} discard", "rtbh ipv4-unicast 203.0.113.10/32 via 192.0.2.1 BLACKHOLE"},
			note: "203.0.113.20/32 from names: flowspec, not rtbh"},
		{name: "default-policy flowspec-action applies to names", domain: DomainPolicy{RTBH: true, Countermeasure: "rtbh"},
			def: DomainPolicy{FlowSpecAction: "rate-limit 125000"}, d: both,
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.20/32} rate-limit 125000", "rtbh ipv4-unicast 203.0.113.10/32 via 192.0.2.1 BLACKHOLE"}},
		{name: "rtbh asked by the client: names still not blackholed", domain: DomainPolicy{RTBH: true},
			d:    with(both, func(d *divert.Diversion) { d.Countermeasure = "rtbh" }),
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.20/32} discard", "rtbh ipv4-unicast 203.0.113.10/32 via 192.0.2.1 BLACKHOLE"}},
		{name: "names-countermeasure scrubbing", domain: DomainPolicy{RTBH: true, Countermeasure: "rtbh", NamesCountermeasure: "scrubbing"}, d: both,
			want: []string{"rtbh ipv4-unicast 203.0.113.10/32 via 192.0.2.1 BLACKHOLE", "scrubbing ipv4-unicast 203.0.113.20/32 via 198.51.100.1"}},
		{name: "default-policy names-countermeasure", domain: DomainPolicy{RTBH: true, Countermeasure: "rtbh"},
			def: DomainPolicy{NamesCountermeasure: "scrubbing"}, d: both,
			want: []string{"rtbh ipv4-unicast 203.0.113.10/32 via 192.0.2.1 BLACKHOLE", "scrubbing ipv4-unicast 203.0.113.20/32 via 198.51.100.1"}},
		{name: "scrubbing domain: names get scrubbing too", domain: DomainPolicy{Countermeasure: "scrubbing"}, d: both,
			want: []string{"scrubbing ipv4-unicast 203.0.113.10/32 via 198.51.100.1", "scrubbing ipv4-unicast 203.0.113.20/32 via 198.51.100.1"}},
		{name: "rtbh for names is an explicit opt-in", domain: DomainPolicy{RTBH: true, Countermeasure: "rtbh", NamesCountermeasure: "rtbh"}, d: both,
			want: []string{"rtbh ipv4-unicast 203.0.113.10/32 via 192.0.2.1 BLACKHOLE", "rtbh ipv4-unicast 203.0.113.20/32 via 192.0.2.1 BLACKHOLE"}},
		{name: "only names", domain: DomainPolicy{RTBH: true, Countermeasure: "rtbh"},
			d:    with(both, func(d *divert.Diversion) { d.Prefixes = d.FromNames }),
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.20/32} discard"}},
		{name: "ports: flowspec for all", domain: DomainPolicy{RTBH: true, Countermeasure: "rtbh"},
			d: with(both, func(d *divert.Diversion) { d.Ports = []dots.PortRange{{LowerPort: 53}}; d.Protocols = []uint8{17} }),
			want: []string{"flowspec ipv4-flowspec {dst 203.0.113.10/32 proto =17 dport =53} discard",
				"flowspec ipv4-flowspec {dst 203.0.113.20/32 proto =17 dport =53} discard"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.Neighbors = []Neighbor{{Name: "edge1", Address: "192.0.2.11", PeerAS: 65000}}
			cfg.Scrubbing = Scrubbing{NextHopV4: "198.51.100.1"}
			cfg.Domains = map[string]DomainPolicy{"gamma": tc.domain}
			cfg.Default = tc.def
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			d := tc.d
			d.Domain = "gamma"
			got, p := planned(t, &Backend{cfg: cfg}, d)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("routes\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if !strings.Contains(p.note, tc.note) {
				t.Fatalf("note %q, want it to contain %q", p.note, tc.note)
			}
		})
	}
}
