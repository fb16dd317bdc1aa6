package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Outputs below are trimmed copies of what FRR 8.4.4, BIRD 2.0.12 and
// ExaBGP 4.2.21 printed for routes sent by GoBGP v4.8.0.

func TestParseFRRTable(t *testing.T) {
	uc := `{"vrfId": 0, "routes": { "203.0.113.10/32": [{"prefix":"203.0.113.10/32","version":1},
 {"origin":"IGP","valid":true,"stale":true,"community":{"string":"blackhole no-export 65000:7","list":["blackhole","noExport","65000:7"]},
  "nexthops":[{"ip":"192.0.2.1","afi":"ipv4","used":true}],"peer":{"peerId":"127.0.0.1"}}] } }`
	fs := `{"vrfId": 0, "routes": {
 "to 203.0.113.10/32 proto = 6  dstp = 80 , = 443 , >= 8000 , <= 8080  tcp = 2,&∋ ! 16 pktlen >= 512 , <= 65535  pktfrag = 2/36":
  [{"prefix":"FS prefix","version":3},{"valid":true,"extendedCommunity":{"string":"FS:rate 1000000.000000 FS:marking 8"},
   "nexthops":[{"ip":"::","afi":"ipv6","scope":"global"}],"peer":{"peerId":"127.0.0.1"}}],
 "to 2001:db8::10/128/off 0 from 2001:db8:bad::/48/off 0 proto = 17  srcp = 53 , = 123 /36":
  [{"prefix":"FS prefix"},{"extendedCommunity":{"string":"NH:192.0.2.50:0 FS:redirect VRF RT:65000:666"},"peer":{}}] } }`
	for _, tc := range []struct {
		family, out string
		want        []string
	}{
		{IPv4Unicast, uc, []string{"ipv4-unicast 203.0.113.10/32 nh 192.0.2.1 comm [65000:7 65535:666 65535:65281] stale"}},
		{IPv4FlowSpec, fs, []string{
			"ipv4-flowspec {destination 2001:db8::10/128; source 2001:db8:bad::/48; protocol =17; source-port =53 =123} ext [redirect 65000:666, redirect-ip 192.0.2.50]",
			"ipv4-flowspec {destination 203.0.113.10/32; protocol =6; destination-port =80 =443 >=8000&<=8080; tcp-flags =2&!16; packet-length >=512&<=65535; fragment =2} ext [mark 8, rate-limit 1000000]",
		}},
		{IPv6Unicast, `{"vrfId": 0, "routes": {} }`, nil},
	} {
		rs, err := parseFRRTable(tc.family, []byte(tc.out))
		if err != nil {
			t.Fatalf("%s: %v", tc.family, err)
		}
		SortRoutes(rs)
		checkStrings(t, tc.family, rs, tc.want)
	}
	if _, err := parseFRRTable(IPv4Unicast, []byte("% Unknown command")); err == nil {
		t.Error("no error for non-JSON output")
	}
}

func checkStrings(t *testing.T, name string, rs []Route, want []string) {
	t.Helper()
	var got []string
	for _, r := range rs {
		got = append(got, r.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", name, got, want)
	}
}

func TestFRRItems(t *testing.T) {
	for _, tc := range []struct{ comp, in, want string }{
		{"destination-port", "= 80 , = 443 , >= 8000 , <= 8080 ", "=80 =443 >=8000&<=8080"},
		{"destination-port", "> 10 , < 5", ">10 <5"}, // not a range: kept ORed
		{"packet-length", "<> 5 , <>= 6 ,  7", "!=5 true false"},
		{"tcp-flags", "∋ 18", "18"},
		{"tcp-flags", "= ! 18,|= 1", "!=18 =1"},
		{"tcp-flags", "∋ ! 2", "!2"},
		{"fragment", "= ! 2", "!2"},
	} {
		var items []fsItem
		if bitmaskComponents[tc.comp] {
			items = frrBitmaskItems(tc.in)
		} else {
			items = frrNumericItems(tc.in)
		}
		if got := formatItems(tc.comp, items); got != tc.want {
			t.Errorf("%s %q: got %q, want %q", tc.comp, tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"FS:rate 0.000000":                             "discard",
		"FS:rate 1000.500000":                          "rate-limit 1000.5",
		"FS:action terminate (apply) RT:65000:1":       "action terminal|rt 65000:1",
		"FS:action eval stops, sample":                 "action sample",
		"UNK:128, 12 FS:marking 46":                    "ext-0x800c|mark 46",
		"FS:redirect VRF RT:192.0.2.1:7 NH:10.0.0.1:1": "redirect 192.0.2.1:7|redirect-ip 10.0.0.1 copy",
		"FS:redirect IP 0x1":                           "redirect-nexthop copy",
		"FS:rate":                                      "frr:FS:rate",
	} {
		if got := strings.Join(frrExtCommunities(in), "|"); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestParseBIRDRoutes(t *testing.T) {
	out := "BIRD 2.0.12 ready.\nTable master4:\n" +
		"203.0.113.10/32      blackhole [speaker 22:20:32.547 from 127.0.0.1] * (100) [AS65001i]\n" +
		"\tType: BGP univ\n\tBGP.origin: IGP\n\tBGP.next_hop: 192.0.2.1\n\tBGP.community: (65535,666) (65535,65281)\n" +
		"                     unreachable [other 22:20:33.000 from 127.0.0.9] (100) [AS65009i]\n" +
		"\tBGP.next_hop: 192.0.2.9\n\n" +
		"Table master6:\n2001:db8::10/128     blackhole [speaker 22:20:32.547 from 127.0.0.1] * (100) [AS65001i]\n" +
		"\tBGP.next_hop: 100::1 fe80::1\n\tBGP.community: (65535,65281) (65535,666)\n\n" +
		"Table flowtab4:\n" +
		"flow4 { dst 203.0.113.10/32; proto 6; dport 80,443,8000..8080; tcp flags 0x2/0x2 && 0x0/0x10; length 512..65535; fragment is_fragment; }  [speaker 22:20:32.547 from 127.0.0.1] * (100) [AS65001i]\n" +
		"\tBGP.ext_community: (generic, 0x80060000, 0x49742400) (generic, 0x80090000, 0x8) (generic, 0x8008fde8, 0x29a)\n" +
		"flow4 { dst 203.0.113.21/32; icmp type 8; icmp code 0; }  [speaker 22:20:32.547 from 127.0.0.1] * (100) [AS65001i]\n" +
		"\tBGP.ext_community: (unknown 0x10c, 192.0.2.50, 0) (rt, 65000, 1) (generic, 0x8108c000, 0x201029a)\n" +
		"Table flowtab6:\n" +
		"flow6 { dst 2001:db8::/32 offset 8; src 2001:db8:bad::/48; next header 17; sport 53,123; }  [speaker 22:20:32.547 from 127.0.0.1] * (100) [AS65001i]\n" +
		"\tBGP.ext_community: (generic, 0x8006fde9, 0x47f42400) (generic, 0x80060000, 0x0)\n"
	rs, err := parseBIRDRoutes(out)
	if err != nil {
		t.Fatal(err)
	}
	SortRoutes(rs)
	checkStrings(t, "bird", rs, []string{
		"ipv4-flowspec {destination 203.0.113.10/32; protocol =6; destination-port =80 =443 >=8000&<=8080; tcp-flags =2&!16; packet-length >=512&<=65535; fragment =2} ext [mark 8, rate-limit 1000000, redirect 65000:666]",
		"ipv4-flowspec {destination 203.0.113.21/32; icmp-type =8; icmp-code =0} ext [redirect 192.0.2.1:666, redirect-ip 192.0.2.50, rt 65000:1]",
		"ipv4-unicast 203.0.113.10/32 nh 192.0.2.1 comm [65535:666 65535:65281]",
		"ipv4-unicast 203.0.113.10/32 nh 192.0.2.9",
		"ipv6-flowspec {destination 2001:db8::/32 offset 8; source 2001:db8:bad::/48; protocol =17; source-port =53 =123} ext [discard, rate-limit 125000]",
		"ipv6-unicast 2001:db8::10/128 nh 100::1 comm [65535:666 65535:65281]",
	})
}

func TestBIRDItems(t *testing.T) {
	for _, tc := range []struct{ comp, in, want string }{
		{"destination-port", "80,443,8000..8080", "=80 =443 >=8000&<=8080"},
		{"packet-length", "> 1000 && < 2000", ">1000&<2000"},
		{"packet-length", "!= 5 || 7", "!=5 =7"},
		{"packet-length", "<= 10,20", "<=10 =20"},
		{"packet-length", "true 0", "true"},
		{"tcp-flags", "0x2/0x2 && 0x0/0x10", "=2&!16"},
		{"tcp-flags", "!0x0/0x12", "18"},
		{"tcp-flags", "!0x12/0x12 || 0x0/0x4", "!=18 !4"},
		{"fragment", "!is_fragment", "!2"},
		{"fragment", "!!dont_fragment", "=1"},
		{"fragment", "first_fragment || last_fragment", "=4 =8"},
	} {
		var items []fsItem
		if bitmaskComponents[tc.comp] {
			items = birdBitmaskItems(tc.in)
		} else {
			items = birdNumericItems(tc.in)
		}
		if got := formatItems(tc.comp, items); got != tc.want {
			t.Errorf("%s %q: got %q, want %q", tc.comp, tc.in, got, tc.want)
		}
	}
}

func TestExaBGPReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "received.jsonl")
	e := &ExaBGP{path: path, rib: map[string]Route{}}
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	const nb = `"neighbor": { "address": { "local": "127.0.0.4", "peer": "127.0.0.1" }, `
	write(`{ "exabgp": "4.0.1", "type": "state", ` + nb + `"state": "up" } }` + "\n")
	if !e.Established() || e.Updates() != 0 || len(e.Routes()) != 0 {
		t.Fatalf("after up: %v %d %v", e.Established(), e.Updates(), e.Routes())
	}
	announce := `{ "type": "update", ` + nb + `"direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "community": [ [ 65535, 666 ], [ 65535, 65281 ] ] }, "announce": { "ipv4 unicast": { "192.0.2.1": [ { "nlri": "203.0.113.10/32" } ] } } } } } }` + "\n" +
		`{ "type": "update", ` + nb + `"message": { "update": { "attribute": { "origin": "igp", "extended-community": [ { "value": 9225060886715039744, "string": "rate-limit:0" }, { "value": 75646400027820032, "string": "redirect-to-nexthop-ietf 192.0.2.50" } ] }, "announce": { "ipv4 flow": { "no-nexthop": [ { "destination-ipv4": [ "203.0.113.10/32" ], "protocol": [ "=tcp" ], "destination-port": [ "=80", "=443", ">=8000&<=8080" ], "tcp-flags": [ "=syn&!ack", "syn+ack" ], "fragment": [ "=is-fragment" ], "icmp-type": [ "=echo-request" ], "string": "flow ..." } ] } } } } } }` + "\n" +
		`{ "type": "update", ` + nb + `"message": { "update": { "attribute": { "extended-community": [ { "value": 9225340065091429376 } ] }, "announce": { "ipv6 flow": { "no-nexthop": [ { "destination-ipv6": [ "2001:db8::10/128/0" ], "next-header": [ "=udp" ], "traffic-class": [ "=46" ] } ] } } } } } }` + "\n"
	// Write the last line in two parts: a partial line must wait.
	cut := len(announce) - 40
	write(announce[:cut])
	if n := e.Updates(); n != 2 {
		t.Errorf("updates after a partial line = %d, want 2", n)
	}
	write(announce[cut:])
	checkStrings(t, "announce", e.Routes(), []string{
		"ipv4-flowspec {destination 203.0.113.10/32; protocol =6; destination-port =80 =443 >=8000&<=8080; icmp-type =8; tcp-flags =2&!16 18; fragment =2} ext [discard, redirect-ip 192.0.2.50]",
		"ipv4-unicast 203.0.113.10/32 nh 192.0.2.1 comm [65535:666 65535:65281]",
		"ipv6-flowspec {destination 2001:db8::10/128; protocol =17; dscp =46} ext [rate-limit 125000]",
	})
	write(`{ "type": "update", ` + nb + `"message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "203.0.113.10/32" } ], "ipv4 flow": [ { "destination-ipv4": [ "203.0.113.10/32" ], "protocol": [ "=tcp" ], "destination-port": [ "=80", "=443", ">=8000&<=8080" ], "tcp-flags": [ "=syn&!ack", "syn+ack" ], "fragment": [ "=is-fragment" ], "icmp-type": [ "=echo-request" ] } ] } } } } }` + "\n")
	checkStrings(t, "withdraw", e.Routes(), []string{
		"ipv6-flowspec {destination 2001:db8::10/128; protocol =17; dscp =46} ext [rate-limit 125000]",
	})
	write(`{ "type": "state", ` + nb + `"state": "down", "reason": "peer reset" } }` + "\n" + "not json\n")
	if e.Established() || len(e.Routes()) != 0 || e.Updates() != 4 || len(e.Errors()) != 1 {
		t.Errorf("after down: established %v routes %v updates %d errors %q", e.Established(), e.Routes(), e.Updates(), e.Errors())
	}
}

func TestExtCommunity(t *testing.T) {
	for v, want := range map[uint64]string{
		0x8007000000000003: "action sample terminal",
		0x8208fde800010007: "redirect 4259840001:7",
		0x0800000000000001: "redirect-nexthop copy",
		0x0002fde8000003e7: "rt 65000:999",
		0x4300000000000000: "ext-0x4300",
	} {
		if got := extCommunity(v); got != want {
			t.Errorf("%#x: got %q, want %q", v, got, want)
		}
	}
}

func TestDiffAndWaitFor(t *testing.T) {
	a := Route{Family: IPv4Unicast, Prefix: "192.0.2.0/24"}
	b := Route{Family: IPv4FlowSpec, FlowSpec: map[string]string{"destination": "192.0.2.0/24"}, Actions: []string{"discard"}}
	if d := Diff([]Route{a, b}, []Route{b, a}); d != "" {
		t.Errorf("Diff of equal lists: %q", d)
	}
	if d := Diff([]Route{a, a}, []Route{a, b}); !strings.Contains(d, "- "+a.String()) || !strings.Contains(d, "+ "+b.String()) {
		t.Errorf("Diff: %q", d)
	}
	calls := 0
	if err := WaitFor(context.Background(), time.Second, func() (bool, string) { calls++; return calls == 3, "" }); err != nil || calls != 3 {
		t.Errorf("WaitFor = %v after %d calls", err, calls)
	}
	err := WaitFor(context.Background(), 120*time.Millisecond, func() (bool, string) { return false, "last routes" })
	if err == nil || !strings.Contains(err.Error(), "last routes") {
		t.Errorf("WaitFor timeout error = %v", err)
	}
}
