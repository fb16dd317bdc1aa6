package flowspec

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func one(v uint32) Range { return Range{v, v} }

// The expected octets below are written by hand from RFC 8955 §4 and RFC
// 8956 §3: numeric_op = e 0x80 | a 0x40 | len 0x00/0x10/0x20 | lt 0x04 |
// gt 0x02 | eq 0x01; bitmask_op = e 0x80 | a 0x40 | len | not 0x02 | m
// 0x01. "v4" rules use destination 10.0.0.0/8 = 01 08 0a, "v6" rules
// 2001:db8::/32 = 01 20 00 20 01 0d b8 (type, length, offset 0, pattern).
var (
	v4dst = pfx("10.0.0.0/8")
	v6dst = pfx("2001:db8::/32")
)

var nlriCases = []struct {
	name  string
	m     Match
	hex   string // full NLRI
	text  string // Match.String
	gobgp string // GoBGP's rendering of the decoded NLRI, if checked
}{
	// Type 1, destination prefix.
	{"1 v4 /32", Match{Destination: pfx("203.0.113.10/32")},
		"06 01 20 cb 00 71 0a", "dst 203.0.113.10/32", "[destination: 203.0.113.10/32]"},
	{"1 v4 /22 host bits masked", Match{Destination: pfx("198.51.101.7/22")},
		"05 01 16 c6 33 64", "dst 198.51.100.0/22", ""},
	{"1 v4 /0", Match{Destination: pfx("0.0.0.0/0")},
		"02 01 00", "dst 0.0.0.0/0", ""},
	{"1 v6 /32 offset 0", Match{Destination: v6dst},
		"07 01 20 00 20 01 0d b8", "dst 2001:db8::/32", "[destination: 2001:db8::/32/0]"},
	{"1 v6 /33", Match{Destination: pfx("2001:db8:8000::/33")},
		"08 01 21 00 20 01 0d b8 80", "dst 2001:db8:8000::/33", ""},
	{"1 v6 /128", Match{Destination: pfx("2001:db8::10/128")},
		"13 01 80 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10", "dst 2001:db8::10/128", ""},
	{"1 v6 /0", Match{Destination: pfx("::/0")},
		"03 01 00 00", "dst ::/0", ""},
	// Type 2, source prefix.
	{"2 v4", Match{Destination: v4dst, Source: pfx("198.51.100.0/24")},
		"08 01 08 0a 02 18 c6 33 64", "dst 10.0.0.0/8 src 198.51.100.0/24",
		"[destination: 10.0.0.0/8][source: 198.51.100.0/24]"},
	{"2 v6", Match{Destination: v6dst, Source: pfx("2001:db8:bad::/48")},
		"10 01 20 00 20 01 0d b8 02 30 00 20 01 0d b8 0b ad", "dst 2001:db8::/32 src 2001:db8:bad::/48", ""},
	// Type 3, IP protocol / upper-layer protocol.
	{"3 v4 =6", Match{Destination: v4dst, Protocols: []Range{one(6)}},
		"06 01 08 0a 03 81 06", "dst 10.0.0.0/8 proto =6", "[destination: 10.0.0.0/8][protocol: ==tcp]"},
	{"3 v6 =6 (RFC 8956 03 81 06)", Match{Destination: v6dst, Protocols: []Range{one(6)}},
		"0a 01 20 00 20 01 0d b8 03 81 06", "dst 2001:db8::/32 proto =6", ""},
	{"3 =6,=17", Match{Destination: v4dst, Protocols: []Range{one(6), one(17)}},
		"08 01 08 0a 03 01 06 81 11", "dst 10.0.0.0/8 proto =6,=17", ""},
	{"3 range", Match{Destination: v4dst, Protocols: []Range{{6, 17}}},
		"08 01 08 0a 03 03 06 c5 11", "dst 10.0.0.0/8 proto >=6&<=17", ""},
	// Type 4, port.
	{"4 =80,=443", Match{Destination: v4dst, Ports: []Range{one(80), one(443)}},
		"09 01 08 0a 04 01 50 91 01 bb", "dst 10.0.0.0/8 port =80,=443", ""},
	// Type 5, destination port.
	{"5 >=8000&<=8080", Match{Destination: v4dst, DstPorts: []Range{{8000, 8080}}},
		"0a 01 08 0a 05 13 1f 40 d5 1f 90", "dst 10.0.0.0/8 dport >=8000&<=8080", ""},
	{"5 range with 1- and 2-octet values", Match{Destination: v4dst, DstPorts: []Range{{80, 8080}}},
		"09 01 08 0a 05 03 50 d5 1f 90", "dst 10.0.0.0/8 dport >=80&<=8080", ""},
	{"5 =0 and =65535", Match{Destination: v4dst, DstPorts: []Range{one(0), one(65535)}},
		"09 01 08 0a 05 01 00 91 ff ff", "dst 10.0.0.0/8 dport =0,=65535", ""},
	// Type 6, source port.
	{"6 =53,=123", Match{Destination: v4dst, SrcPorts: []Range{one(53), one(123)}},
		"08 01 08 0a 06 01 35 81 7b", "dst 10.0.0.0/8 sport =53,=123", ""},
	// Types 7 and 8, ICMP type and code.
	{"7 =8", Match{Destination: v4dst, ICMPTypes: []Range{one(8)}},
		"06 01 08 0a 07 81 08", "dst 10.0.0.0/8 icmp-type =8", ""},
	{"7 v6 =128", Match{Destination: v6dst, ICMPTypes: []Range{one(128)}},
		"0a 01 20 00 20 01 0d b8 07 81 80", "dst 2001:db8::/32 icmp-type =128", ""},
	{"8 =0", Match{Destination: v4dst, ICMPCodes: []Range{one(0)}},
		"06 01 08 0a 08 81 00", "dst 10.0.0.0/8 icmp-code =0", ""},
	// Type 9, TCP flags.
	{"9 SYN & !ACK", Match{Destination: v4dst, TCPFlags: []BitTerm{
		{Bits: TCPSyn, Match: true}, {Bits: TCPAck, Not: true, And: true}}},
		"08 01 08 0a 09 01 02 c2 10", "dst 10.0.0.0/8 tcp-flags =syn&!ack",
		"[destination: 10.0.0.0/8][tcp-flags: =S&!A]"},
	{"9 any of SYN|FIN or RST", Match{Destination: v4dst, TCPFlags: []BitTerm{
		{Bits: TCPSyn | TCPFin}, {Bits: TCPRst}}},
		"08 01 08 0a 09 00 03 80 04", "dst 10.0.0.0/8 tcp-flags fin|syn,rst", ""},
	{"9 2-octet bitmask", Match{Destination: v4dst, TCPFlags: []BitTerm{{Bits: 0x100 | TCPAck, Match: true}}},
		"07 01 08 0a 09 91 01 10", "dst 10.0.0.0/8 tcp-flags =ack|0x100", ""},
	// Type 10, packet length.
	{"10 >=512&<=65535", Match{Destination: v4dst, PacketLengths: []Range{{512, 65535}}},
		"0a 01 08 0a 0a 13 02 00 d5 ff ff", "dst 10.0.0.0/8 len >=512&<=65535", ""},
	// Type 11, DSCP.
	{"11 =46", Match{Destination: v4dst, DSCP: []Range{one(46)}},
		"06 01 08 0a 0b 81 2e", "dst 10.0.0.0/8 dscp =46", ""},
	{"11 range", Match{Destination: v4dst, DSCP: []Range{{8, 15}}},
		"08 01 08 0a 0b 03 08 c5 0f", "dst 10.0.0.0/8 dscp >=8&<=15", ""},
	// Type 12, fragment.
	{"12 IsF", Match{Destination: v4dst, Fragments: []BitTerm{{Bits: FragIsF, Match: true}}},
		"06 01 08 0a 0c 81 02", "dst 10.0.0.0/8 frag =isf", "[destination: 10.0.0.0/8][fragment: =is-fragment]"},
	{"12 DF or FF", Match{Destination: v4dst, Fragments: []BitTerm{{Bits: FragDF}, {Bits: FragFF}}},
		"08 01 08 0a 0c 00 01 80 04", "dst 10.0.0.0/8 frag df,ff", ""},
	{"12 v6 not a fragment", Match{Destination: v6dst, Fragments: []BitTerm{{Bits: FragIsF | FragFF | FragLF, Not: true}}},
		"0a 01 20 00 20 01 0d b8 0c 82 0e", "dst 2001:db8::/32 frag !isf|ff|lf", ""},
	// Type 13, flow label (IPv6).
	{"13 20-bit value, 4 octets", Match{Destination: v6dst, FlowLabels: []Range{one(0xabcde)}},
		"0d 01 20 00 20 01 0d b8 0d a1 00 0a bc de", "dst 2001:db8::/32 flow-label =703710",
		"[destination: 2001:db8::/32/0][label: ==703710]"},
	{"13 range", Match{Destination: v6dst, FlowLabels: []Range{{1000, 0xfffff}}},
		"10 01 20 00 20 01 0d b8 0d 13 03 e8 e5 00 0f ff ff", "dst 2001:db8::/32 flow-label >=1000&<=1048575", ""},

	// RFC 8955 §4.2 encoding examples.
	{"RFC 8955 example 1", Match{Destination: pfx("192.0.2.0/24"),
		Protocols: []Range{one(6)}, Ports: []Range{one(25)}},
		"0b 01 18 c0 00 02 03 81 06 04 81 19", "dst 192.0.2.0/24 proto =6 port =25", ""},
	{"RFC 8955 example 2", Match{Destination: pfx("192.0.2.0/24"), Source: pfx("203.0.113.0/24"),
		Ports: []Range{{137, 139}, one(8080)}},
		"12 01 18 c0 00 02 02 18 cb 00 71 04 03 89 45 8b 91 1f 90",
		"dst 192.0.2.0/24 src 203.0.113.0/24 port >=137&<=139,=8080", ""},

	// A realistic rule: TCP SYN flood to a web server from one network.
	{"realistic v4", Match{
		Destination:   pfx("203.0.113.10/32"),
		Source:        pfx("198.51.100.0/24"),
		Protocols:     []Range{one(6)},
		DstPorts:      []Range{one(80), one(443), {8000, 8080}},
		TCPFlags:      []BitTerm{{Bits: TCPSyn, Match: true}, {Bits: TCPAck, Not: true, And: true}},
		PacketLengths: []Range{{40, 60}},
	},
		"24" + // 36 octets
			" 01 20 cb 00 71 0a" + // dst 203.0.113.10/32
			" 02 18 c6 33 64" + // src 198.51.100.0/24
			" 03 81 06" + // proto =6
			" 05 01 50 11 01 bb 13 1f 40 d5 1f 90" + // dport =80,=443,>=8000&<=8080
			" 09 01 02 c2 10" + // tcp-flags =SYN & !ACK
			" 0a 03 28 c5 3c", // len >=40&<=60
		"dst 203.0.113.10/32 src 198.51.100.0/24 proto =6 dport =80,=443,>=8000&<=8080 tcp-flags =syn&!ack len >=40&<=60",
		"[destination: 203.0.113.10/32][source: 198.51.100.0/24][protocol: ==tcp]" +
			"[destination-port: ==80 ==443 >=8000&<=8080][tcp-flags: =S&!A][packet-length: >=40&<=60]"},
	{"realistic v6", Match{
		Destination:   pfx("2001:db8::10/128"),
		Source:        pfx("2001:db8:bad::/48"),
		Protocols:     []Range{one(17)},
		SrcPorts:      []Range{one(53)},
		PacketLengths: []Range{{1000, 65535}},
	},
		"29" +
			" 01 80 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10" +
			" 02 30 00 20 01 0d b8 0b ad" +
			" 03 81 11" +
			" 06 81 35" +
			" 0a 13 03 e8 d5 ff ff",
		"dst 2001:db8::10/128 src 2001:db8:bad::/48 proto =17 sport =53 len >=1000&<=65535", ""},
}

func TestNLRI(t *testing.T) {
	for _, tc := range nlriCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, err := tc.m.NLRI()
			if err != nil {
				t.Fatalf("NLRI: %v", err)
			}
			if want := unhex(t, tc.hex); !bytes.Equal(got, want) {
				t.Errorf("NLRI\n got % x\nwant % x", got, want)
			}
			if int(got[0]) != len(got)-1 {
				t.Errorf("length octet %d for %d octets", got[0], len(got)-1)
			}
			if s := tc.m.String(); s != tc.text {
				t.Errorf("String\n got %q\nwant %q", s, tc.text)
			}
			g, err := crossCheck(tc.m, got)
			if err != nil {
				t.Fatalf("GoBGP: %v", err)
			}
			if tc.gobgp != "" && g != tc.gobgp {
				t.Errorf("GoBGP rendering\n got %s\nwant %s", g, tc.gobgp)
			}
		})
	}
}

// TestNLRILongLength: from 240 octets the length is 0xFnnn (RFC 8955 §4.1),
// up to 4095.
func TestNLRILongLength(t *testing.T) {
	// The body is dst (6) + type (1) + 3 per 2-octet port + 2 per 1-octet port.
	rule := func(wide, narrow int) Match {
		m := Match{Destination: pfx("203.0.113.10/32")}
		for i := range narrow {
			m.DstPorts = append(m.DstPorts, one(uint32(1+i)))
		}
		for i := range wide {
			m.DstPorts = append(m.DstPorts, one(uint32(1000+i)))
		}
		return m
	}
	for _, tc := range []struct {
		wide, narrow int
		head         string
		body         int
	}{
		{76, 2, "ef", 239},
		{77, 1, "f0 f0", 240},
		{78, 0, "f0 f1", 241},
		{1362, 1, "ff ff", 4095},
	} {
		m := rule(tc.wide, tc.narrow)
		got, err := m.NLRI()
		if err != nil {
			t.Fatalf("%d octets: %v", tc.body, err)
		}
		head := unhex(t, tc.head)
		if !bytes.HasPrefix(got, head) || len(got)-len(head) != tc.body {
			t.Errorf("%d octets: got header % x and %d octets", tc.body, got[:len(head)], len(got)-len(head))
		}
		if _, err := crossCheck(m, got); err != nil {
			t.Errorf("%d octets: %v", tc.body, err)
		}
	}
	m := rule(1363, 0) // 4096 octets
	if _, err := m.NLRI(); err == nil || !strings.Contains(err.Error(), "4095") {
		t.Errorf("4096-octet rule: err %v", err)
	}
	if err := m.Validate(); err == nil {
		t.Error("Validate accepted a 4096-octet rule")
	}
}

func TestNLRIDeterministic(t *testing.T) {
	for _, tc := range nlriCases {
		a, _ := tc.m.NLRI()
		b, _ := tc.m.NLRI()
		if !bytes.Equal(a, b) || tc.m.String() != tc.m.String() {
			t.Errorf("%s: not deterministic", tc.name)
		}
	}
	// The order of a component's values is the caller's.
	a := Match{Destination: v4dst, DstPorts: []Range{one(443), one(80)}}
	b := Match{Destination: v4dst, DstPorts: []Range{one(80), one(443)}}
	na, _ := a.NLRI()
	nb, _ := b.NLRI()
	if bytes.Equal(na, nb) || a.String() == b.String() {
		t.Error("value order was not kept")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Match
		want string // substring of the error
	}{
		{"no destination", Match{}, "destination prefix is required"},
		{"invalid source", Match{Destination: v4dst, Source: netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 33)}, "invalid source"},
		{"v6 source for v4", Match{Destination: v4dst, Source: v6dst}, "not of the ipv4 family"},
		{"v4 source for v6", Match{Destination: v6dst, Source: v4dst}, "not of the ipv6 family"},
		{"flow label on v4", Match{Destination: v4dst, FlowLabels: []Range{one(1)}}, "only in IPv6"},
		{"DF on v6", Match{Destination: v6dst, Fragments: []BitTerm{{Bits: FragDF}}}, "DF does not exist in IPv6"},
		{"reversed range", Match{Destination: v4dst, DstPorts: []Range{{8080, 8000}}}, "dport range 8080-8000 is reversed"},
		{"protocol > 255", Match{Destination: v4dst, Protocols: []Range{one(256)}}, "proto value 256 exceeds 255"},
		{"port > 65535", Match{Destination: v4dst, Ports: []Range{{1, 65536}}}, "port value 65536 exceeds 65535"},
		{"sport > 65535", Match{Destination: v4dst, SrcPorts: []Range{one(70000)}}, "sport value"},
		{"icmp type > 255", Match{Destination: v4dst, ICMPTypes: []Range{one(300)}}, "icmp-type value"},
		{"icmp code > 255", Match{Destination: v4dst, ICMPCodes: []Range{one(256)}}, "icmp-code value"},
		{"packet length > 65535", Match{Destination: v4dst, PacketLengths: []Range{one(65536)}}, "len value"},
		{"DSCP > 63", Match{Destination: v4dst, DSCP: []Range{one(64)}}, "dscp value 64 exceeds 63"},
		{"flow label > 20 bits", Match{Destination: v6dst, FlowLabels: []Range{one(1 << 20)}}, "flow-label value"},
		{"first term ANDed", Match{Destination: v4dst, TCPFlags: []BitTerm{{Bits: TCPSyn, And: true}}}, "first tcp-flags term"},
		{"TCP data offset bits", Match{Destination: v4dst, TCPFlags: []BitTerm{{Bits: 0x1002}}}, "tcp-flags bits 0x1000"},
		{"fragment reserved bits", Match{Destination: v4dst, Fragments: []BitTerm{{Bits: 0x10}}}, "frag bits 0x10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
			if _, nerr := tc.m.NLRI(); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("NLRI error %v, want %v", nerr, err)
			}
			_ = tc.m.String() // must not panic
		})
	}
	// Boundary values are accepted.
	ok := Match{Destination: v6dst, Protocols: []Range{one(255)}, Ports: []Range{one(65535)},
		DSCP: []Range{one(63)}, FlowLabels: []Range{one(0xfffff)},
		TCPFlags:  []BitTerm{{Bits: 0x0fff}},
		Fragments: []BitTerm{{Bits: FragIsF | FragFF | FragLF}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("boundary values: %v", err)
	}
}

func TestFamily(t *testing.T) {
	for _, tc := range []struct {
		p    netip.Prefix
		want Family
	}{
		{pfx("192.0.2.0/24"), IPv4},
		{pfx("2001:db8::/32"), IPv6},
		{pfx("::ffff:192.0.2.1/128"), IPv6},
		{netip.Prefix{}, 0},
	} {
		if got := (Match{Destination: tc.p}).Family(); got != tc.want {
			t.Errorf("%v: Family %v, want %v", tc.p, got, tc.want)
		}
	}
	if IPv4.String() != "ipv4" || IPv6.String() != "ipv6" || Family(0).String() != "family(0)" {
		t.Error("Family.String")
	}
}

func TestFromScope(t *testing.T) {
	u16 := func(n uint16) *uint16 { return &n }
	prefixes := []netip.Prefix{pfx("203.0.113.10/32"), pfx("2001:db8::/64")}
	ports := []dots.PortRange{{LowerPort: 80}, {LowerPort: 8000, UpperPort: u16(8080)}, {LowerPort: 443, UpperPort: u16(443)}}
	got := FromScope(prefixes, ports, []uint8{6, 17})
	if len(got) != 2 {
		t.Fatalf("%d matches, want 2", len(got))
	}
	want := []string{
		"dst 203.0.113.10/32 proto =6,=17 dport =80,>=8000&<=8080,=443",
		"dst 2001:db8::/64 proto =6,=17 dport =80,>=8000&<=8080,=443",
	}
	fams := []Family{IPv4, IPv6}
	for i, m := range got {
		if m.String() != want[i] || m.Family() != fams[i] {
			t.Errorf("match %d: %s (%v), want %s (%v)", i, m, m.Family(), want[i], fams[i])
		}
		nlri, err := m.NLRI()
		if err != nil {
			t.Fatalf("match %d: %v", i, err)
		}
		if _, err := crossCheck(m, nlri); err != nil {
			t.Errorf("match %d: %v", i, err)
		}
	}
	// Every Match owns its slices.
	got[0].DstPorts[0].Lo = 1
	if got[1].DstPorts[0].Lo != 80 {
		t.Error("matches share their port slice")
	}
	// No ports and no protocols: the whole prefix.
	all := FromScope([]netip.Prefix{pfx("198.51.100.0/24")}, nil, nil)
	if len(all) != 1 || all[0].String() != "dst 198.51.100.0/24" || all[0].Protocols != nil || all[0].DstPorts != nil {
		t.Errorf("bare scope: %+v", all)
	}
	if n := FromScope(nil, ports, nil); len(n) != 0 {
		t.Errorf("no prefixes: %d matches", len(n))
	}
	// A reversed DOTS port range surfaces in Validate.
	bad := FromScope(prefixes[:1], []dots.PortRange{{LowerPort: 90, UpperPort: u16(80)}}, nil)
	if err := bad[0].Validate(); err == nil {
		t.Error("reversed port range accepted")
	}
}
