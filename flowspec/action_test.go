package flowspec

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func mustIP(s string) netip.Addr { return netip.MustParseAddr(s) }

// gobgpIPv4Redirect is draft-ietf-idr-flowspec-redirect-ip's 0x010c as GoBGP
// v4.8.0 builds it (it has no named type for it, see docs/gobgp-v4.md §3).
func gobgpIPv4Redirect(ip string) bgp.ExtendedCommunityInterface {
	c, err := bgp.NewIPv4AddressSpecificExtended(0x0c, mustIP(ip), 0, true)
	if err != nil {
		panic(err)
	}
	return c
}

func gobgpRedirectIPv4RT(ip string, n uint16) bgp.ExtendedCommunityInterface {
	c, err := bgp.NewRedirectIPv4AddressSpecificExtended(mustIP(ip), n)
	if err != nil {
		panic(err)
	}
	return c
}

var actionCases = []struct {
	text   string // input of ParseAction
	want   Action
	str    string // Action.String
	hex    string // the 8 octets, by hand from RFC 8955 §7 and the redirect-ip draft
	gobgp  bgp.ExtendedCommunityInterface
	render string // GoBGP's String of the decoded community
}{
	{"discard", Action{Kind: Discard}, "discard",
		"80 06 00 00 00 00 00 00", bgp.NewTrafficRateExtended(0, 0), "discard"},
	{"Discard as 65001", Action{Kind: Discard, AS: 65001}, "discard as 65001",
		"80 06 fd e9 00 00 00 00", bgp.NewTrafficRateExtended(65001, 0), "discard(as: 65001)"},
	// 125000 = 1.9073486328125 * 2^16: float32 0x47f42400.
	{"rate-limit 125000", Action{Kind: RateLimit, RateBytes: 125000}, "rate-limit 125000",
		"80 06 00 00 47 f4 24 00", bgp.NewTrafficRateExtended(0, 125000), "rate: 125000.000000"},
	{"rate-limit 125000 as 65001", Action{Kind: RateLimit, RateBytes: 125000, AS: 65001}, "rate-limit 125000 as 65001",
		"80 06 fd e9 47 f4 24 00", bgp.NewTrafficRateExtended(65001, 125000), "rate: 125000.000000(as: 65001)"},
	// 1250000 = 1.1920928955078125 * 2^20: float32 0x49989680.
	{"rate-limit 1.25e6", Action{Kind: RateLimit, RateBytes: 1.25e6}, "rate-limit 1250000",
		"80 06 00 00 49 98 96 80", bgp.NewTrafficRateExtended(0, 1.25e6), "rate: 1250000.000000"},
	{"rate-limit 0.5", Action{Kind: RateLimit, RateBytes: 0.5}, "rate-limit 0.5",
		"80 06 00 00 3f 00 00 00", bgp.NewTrafficRateExtended(0, 0.5), "rate: 0.500000"},
	{"redirect-vrf 65000:666", Action{Kind: RedirectVRF, RouteTarget: "65000:666"}, "redirect-vrf 65000:666",
		"80 08 fd e8 00 00 02 9a", bgp.NewRedirectTwoOctetAsSpecificExtended(65000, 666), "redirect: 65000:666"},
	{"redirect-vrf 065000:4294967295", Action{Kind: RedirectVRF, RouteTarget: "65000:4294967295"}, "redirect-vrf 65000:4294967295",
		"80 08 fd e8 ff ff ff ff", bgp.NewRedirectTwoOctetAsSpecificExtended(65000, 4294967295), "redirect: 65000:4294967295"},
	{"redirect-vrf 4200000000:100", Action{Kind: RedirectVRF, RouteTarget: "4200000000:100"}, "redirect-vrf 4200000000:100",
		"82 08 fa 56 ea 00 00 64", bgp.NewRedirectFourOctetAsSpecificExtended(4200000000, 100), "redirect: 64086.59904:100"}, // GoBGP shows asdot
	{"redirect-vrf 192.0.2.1:666", Action{Kind: RedirectVRF, RouteTarget: "192.0.2.1:666"}, "redirect-vrf 192.0.2.1:666",
		"81 08 c0 00 02 01 02 9a", gobgpRedirectIPv4RT("192.0.2.1", 666), "redirect: 192.0.2.1:666"},
	{"redirect-ip 192.0.2.50", Action{Kind: RedirectIPv4, RedirectIP: mustIP("192.0.2.50")}, "redirect-ip 192.0.2.50",
		"01 0c c0 00 02 32 00 00", gobgpIPv4Redirect("192.0.2.50"), "192.0.2.50:0"},
	{"mark 8", Action{Kind: MarkDSCP, DSCP: 8}, "mark 8",
		"80 09 00 00 00 00 00 08", bgp.NewTrafficRemarkExtended(8), "remark: 8"},
	{"  MARK   46 ", Action{Kind: MarkDSCP, DSCP: 46}, "mark 46",
		"80 09 00 00 00 00 00 2e", bgp.NewTrafficRemarkExtended(46), "remark: 46"},
	{"mark 0", Action{Kind: MarkDSCP}, "mark 0",
		"80 09 00 00 00 00 00 00", bgp.NewTrafficRemarkExtended(0), "remark: 0"},
}

func TestActions(t *testing.T) {
	for _, tc := range actionCases {
		t.Run(tc.text, func(t *testing.T) {
			a, err := ParseAction(tc.text)
			if err != nil {
				t.Fatalf("ParseAction: %v", err)
			}
			if a != tc.want {
				t.Errorf("ParseAction = %+v, want %+v", a, tc.want)
			}
			if a.String() != tc.str {
				t.Errorf("String = %q, want %q", a.String(), tc.str)
			}
			if b, err := ParseAction(a.String()); err != nil || b != a {
				t.Errorf("round trip: %+v, %v", b, err)
			}
			c, err := a.ExtendedCommunity()
			if err != nil {
				t.Fatalf("ExtendedCommunity: %v", err)
			}
			if want := unhex(t, tc.hex); !bytes.Equal(c[:], want) {
				t.Errorf("ExtendedCommunity\n got % x\nwant % x", c, want)
			}
			// GoBGP builds the same octets and decodes ours.
			if tc.gobgp != nil {
				g, err := tc.gobgp.Serialize()
				if err != nil || !bytes.Equal(g, c[:]) {
					t.Errorf("GoBGP encodes % x (%v), we % x", g, err, c)
				}
			}
			d, err := bgp.ParseExtended(c[:])
			if err != nil {
				t.Fatalf("GoBGP ParseExtended: %v", err)
			}
			if _, unknown := d.(*bgp.UnknownExtended); unknown {
				t.Errorf("GoBGP does not know % x", c)
			}
			if tc.render != "" && d.String() != tc.render {
				t.Errorf("GoBGP renders %q, want %q", d.String(), tc.render)
			}
		})
	}
}

func TestParseActionErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty action"},
		{"   ", "empty action"},
		{"drop", `unknown action "drop"`},
		{"discard now", `unexpected "now"`},
		{"discard as", `unexpected "as"`},
		{"discard as 70000", "2-octet AS"},
		{"rate-limit", `"rate-limit" needs an argument`},
		{"rate-limit fast", "bytes per second"},
		{"rate-limit 1e39", "bytes per second"},
		{"rate-limit 0", "above 0"},
		{"rate-limit -5", "above 0"},
		{"rate-limit NaN", "above 0"},
		{"rate-limit +Inf", "above 0"},
		{"rate-limit 1000 as x", "2-octet AS"},
		{"redirect-vrf", "needs an argument"},
		{"redirect-vrf 65000", "no ':'"},
		{"redirect-vrf x:1", "not an AS number"},
		{"redirect-vrf 4294967296:1", "not an AS number"},
		{"redirect-vrf 2001:db8::1:5", "not an AS number"},
		{"redirect-vrf 192.0.2:1", "not an IPv4 address"},
		{"redirect-vrf 65000:4294967296", "from 0 to 4294967295"},
		{"redirect-vrf 65000:x", "from 0 to 4294967295"},
		{"redirect-vrf 4200000000:65536", "from 0 to 65535"},
		{"redirect-vrf 192.0.2.1:65536", "from 0 to 65535"},
		{"redirect-vrf 65000:1 as 5", `unexpected "as 5"`},
		{"redirect-ip", "needs an argument"},
		{"redirect-ip gateway", "not an IPv4 address"},
		{"redirect-ip 2001:db8::1", "want an IPv4 address"},
		{"redirect-ip ::ffff:192.0.2.1", "want an IPv4 address"},
		{"mark", "needs an argument"},
		{"mark 64", "from 0 to 63"},
		{"mark 256", "from 0 to 63"},
		{"mark ef", "from 0 to 63"},
		{"mark 8 9", `unexpected "9"`},
	} {
		a, err := ParseAction(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAction(%q) = %+v, %v; want error with %q", tc.in, a, err, tc.want)
		} else if !strings.HasPrefix(err.Error(), "flowspec: ") {
			t.Errorf("ParseAction(%q): error %q lacks the package prefix", tc.in, err)
		}
	}
}

func TestExtendedCommunityErrors(t *testing.T) {
	for _, tc := range []struct {
		a    Action
		want string
	}{
		{Action{}, "unknown action kind 0"},
		{Action{Kind: 99}, "unknown action kind 99"},
		{Action{Kind: RateLimit}, "above 0"},
		{Action{Kind: RateLimit, RateBytes: -1}, "above 0"},
		{Action{Kind: RedirectVRF}, "no ':'"},
		{Action{Kind: RedirectVRF, RouteTarget: "65000:x"}, "redirect-vrf"},
		{Action{Kind: RedirectIPv4}, "want an IPv4 address"},
		{Action{Kind: RedirectIPv4, RedirectIP: mustIP("2001:db8::1")}, "want an IPv4 address"},
		{Action{Kind: MarkDSCP, DSCP: 64}, "from 0 to 63"},
	} {
		if _, err := tc.a.ExtendedCommunity(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.a, err, tc.want)
		}
		_ = tc.a.String() // must not panic
	}
}

func TestActionString(t *testing.T) {
	for _, tc := range []struct {
		a    Action
		want string
	}{
		{Action{Kind: RateLimit, RateBytes: 1.5e9}, "rate-limit 1500000000"},
		{Action{Kind: RedirectVRF, RouteTarget: "0065000:00666"}, "redirect-vrf 65000:666"},
		{Action{Kind: RedirectVRF, RouteTarget: "bogus"}, "redirect-vrf bogus"},
		{Action{Kind: 9}, "action(9)"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.a, got, tc.want)
		}
	}
	for k, want := range map[ActionKind]string{Discard: "discard", RateLimit: "rate-limit",
		RedirectVRF: "redirect-vrf", RedirectIPv4: "redirect-ip", MarkDSCP: "mark", 0: "action(0)"} {
		if k.String() != want {
			t.Errorf("ActionKind(%d) = %q, want %q", k, k.String(), want)
		}
	}
}
