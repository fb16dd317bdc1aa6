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
