package service_test

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/flowspec"
	"github.com/levee-dots/levee/service"
)

func TestFilters(t *testing.T) {
	pfx := netip.MustParsePrefix
	v4, v6 := pfx("203.0.113.0/25"), pfx("2001:db8:6401::/48")
	domain := []netip.Prefix{v4, v6}
	one := func(v uint32) []flowspec.Range { return []flowspec.Range{{Lo: v, Hi: v}} }
	discard := flowspec.Action{Kind: flowspec.Discard}
	ace := func(matches, actions string) string {
		return `{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[{"name":"e","matches":` + matches + `,"actions":` + actions + `}]}}]}}`
	}
	drop := `{"forwarding":"drop"}`
	for _, tc := range []struct {
		name string
		body string
		want []divert.Filter
		err  bool
	}{
		{"rfc 8783 sample-ipv4-acl", ace(`{"ipv4":{"destination-ipv4-network":"203.0.113.0/26","source-ipv4-network":"192.0.2.0/24"}}`, drop),
			[]divert.Filter{{Match: flowspec.Match{Destination: pfx("203.0.113.0/26"), Source: pfx("192.0.2.0/24")}, Action: discard}}, false},
		{"no destination: every domain prefix", ace(`{"tcp":{"flags-bitmask":{"operator":"match","bitmask":2}}}`, `{"forwarding":"accept","rate-limit":"20.00"}`),
			[]divert.Filter{
				{Match: flowspec.Match{Destination: v4, Protocols: one(6), TCPFlags: []flowspec.BitTerm{{Bits: 2, Match: true}}}, Action: flowspec.Action{Kind: flowspec.RateLimit, RateBytes: 20}},
				{Match: flowspec.Match{Destination: v6, Protocols: one(6), TCPFlags: []flowspec.BitTerm{{Bits: 2, Match: true}}}, Action: flowspec.Action{Kind: flowspec.RateLimit, RateBytes: 20}},
			}, false},
		{"null scan: not any 4095", ace(`{"ipv4":{"destination-ipv4-network":"203.0.113.0/25"},"tcp":{"flags-bitmask":{"operator":"not any","bitmask":4095}}}`, drop),
			[]divert.Filter{{Match: flowspec.Match{Destination: v4, Protocols: one(6), TCPFlags: []flowspec.BitTerm{{Bits: 4095, Not: true}}}, Action: discard}}, false},
		{"ipv4 fragments, no destination: ipv4 domain prefixes only", ace(`{"ipv4":{"fragment":{"operator":"match","type":"isf"}}}`, drop),
			[]divert.Filter{{Match: flowspec.Match{Destination: v4, Fragments: []flowspec.BitTerm{{Bits: flowspec.FragIsF, Match: true}}}, Action: discard}}, false},
		{"udp operators", ace(`{"ipv6":{"destination-ipv6-network":"2001:db8:6401::2/127","protocol":17,"flow-label":10000},"udp":{"source-port-range-or-operator":{"operator":"lte","port":80},"destination-port-range-or-operator":{"operator":"neq","port":1010}}}`, `{"forwarding":"accept"}`),
			[]divert.Filter{{Match: flowspec.Match{Destination: pfx("2001:db8:6401::2/127"), Protocols: one(17), FlowLabels: one(10000),
				SrcPorts: []flowspec.Range{{Lo: 0, Hi: 80}}, DstPorts: []flowspec.Range{{Lo: 0, Hi: 1009}, {Lo: 1011, Hi: 65535}}}, Accept: true}}, false},
		{"port range, gte, icmp", ace(`{"ipv4":{"destination-ipv4-network":"203.0.113.8/29","length":1500,"dscp":10},"udp":{"source-port-range-or-operator":{"lower-port":53,"upper-port":60},"destination-port-range-or-operator":{"operator":"gte","port":1024}}}`, drop),
			[]divert.Filter{{Match: flowspec.Match{Destination: pfx("203.0.113.8/29"), Protocols: one(17), PacketLengths: one(1500), DSCP: one(10),
				SrcPorts: []flowspec.Range{{Lo: 53, Hi: 60}}, DstPorts: []flowspec.Range{{Lo: 1024, Hi: 65535}}}, Action: discard}}, false},
		{"icmp per family", ace(`{"icmp":{"type":8,"code":0}}`, drop),
			[]divert.Filter{
				{Match: flowspec.Match{Destination: v4, Protocols: one(1), ICMPTypes: one(8), ICMPCodes: one(0)}, Action: discard},
				{Match: flowspec.Match{Destination: v6, Protocols: one(58), ICMPTypes: one(8), ICMPCodes: one(0)}, Action: discard},
			}, false},
		{"tcp flags", ace(`{"ipv4":{"destination-ipv4-network":"203.0.113.0/25"},"tcp":{"flags":"syn ack","destination-port-range-or-operator":{"port":443}}}`, drop),
			[]divert.Filter{{Match: flowspec.Match{Destination: v4, Protocols: one(6), TCPFlags: []flowspec.BitTerm{{Bits: flowspec.TCPSyn | flowspec.TCPAck, Match: true}}, DstPorts: one(443)}, Action: discard}}, false},
		{"rate-limit 0 is discard", ace(`{"ipv4":{"destination-ipv4-network":"203.0.113.0/25"}}`, `{"forwarding":"accept","rate-limit":"0.00"}`),
			[]divert.Filter{{Match: flowspec.Match{Destination: v4}, Action: discard}}, false},
		{"protocol contradicts l4: nothing", ace(`{"ipv4":{"destination-ipv4-network":"203.0.113.0/25","protocol":17},"tcp":{"flags-bitmask":{"bitmask":2}}}`, drop), nil, false},
		{"ttl refused", ace(`{"ipv4":{"ttl":1}}`, drop), nil, true},
		{"udp length refused", ace(`{"udp":{"length":100}}`, drop), nil, true},
		{"tcp window refused", ace(`{"tcp":{"window-size":0}}`, drop), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := data.DecodeACLs([]byte(tc.body), data.Request)
			if err != nil {
				t.Fatal(err)
			}
			got, err := service.Filters(&a.ACL[0], domain)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			for _, f := range got {
				if err := f.Match.Validate(); err != nil {
					t.Errorf("filter %+v does not encode: %v", f.Match, err)
				}
			}
		})
	}
}
