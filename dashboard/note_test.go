package dashboard

import (
	"reflect"
	"testing"
)

func TestSplitNote(t *testing.T) {
	backends := []string{"bgp", "dns", "scrub"}
	cases := []struct {
		name, note string
		want       []outcomeJSON
	}{
		{"empty", "", []outcomeJSON{}},
		{"service's own", "no mitigator is configured on this server", []outcomeJSON{{"", "no mitigator is configured on this server"}}},
		{"one backend", "bgp: rtbh 203.0.113.10/32 -> edge1", []outcomeJSON{{"bgp", "rtbh 203.0.113.10/32 -> edge1"}}},
		{"two backends, details with semicolons", "bgp: rtbh 203.0.113.10/32 -> edge1; not at edge2 (not established); scrub: scrubbing at node1",
			[]outcomeJSON{{"bgp", "rtbh 203.0.113.10/32 -> edge1; not at edge2 (not established)"}, {"scrub", "scrubbing at node1"}}},
		{"a name inside a detail", "dns: www.example.com -> 192.0.2.5 (was bgp: x)", []outcomeJSON{{"dns", "www.example.com -> 192.0.2.5 (was bgp: x)"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitNote(tc.note, backends); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("splitNote(%q) = %+v, want %+v", tc.note, got, tc.want)
			}
		})
	}
}

func TestRouteGroups(t *testing.T) {
	cases := []struct {
		name, detail string
		want         []routeGroup
	}{
		{"nothing announced", "no neighbor can take ipv4-flowspec (edge1 is not established)", nil},
		{"one group, one lacking", "flowspec {dst 203.0.113.10/32 proto =6 dport =443} discard -> edge1; not at edge2 (not established)",
			[]routeGroup{{"flowspec {dst 203.0.113.10/32 proto =6 dport =443} discard", []string{"edge1"}}}},
		{"two groups", "rtbh 203.0.113.10/32 -> edge1, edge2; rtbh 2001:db8:6401::10/128 -> edge1",
			[]routeGroup{{"rtbh 203.0.113.10/32", []string{"edge1", "edge2"}}, {"rtbh 2001:db8:6401::10/128", []string{"edge1"}}}},
		{"dry run", "dry-run: routes logged, not announced: 203.0.113.10/32", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := routeGroups(tc.detail); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("routeGroups(%q) = %+v, want %+v", tc.detail, got, tc.want)
			}
		})
	}
}
