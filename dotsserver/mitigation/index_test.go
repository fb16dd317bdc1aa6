package mitigation

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/levee-dots/levee/dots"
)

func TestOverlappingIndex(t *testing.T) {
	b := NewBook(Policy{})
	rec := func(mid uint32, fqdn string, prefixes ...string) *Record {
		r := &Record{Key: Key{CUID: "c", MID: mid}, Status: dots.StatusInProgress, Trigger: true}
		for _, p := range prefixes {
			r.Prefixes = append(r.Prefixes, netip.MustParsePrefix(p))
		}
		if fqdn != "" {
			r.Scope.TargetFQDN = []string{fqdn}
		}
		return r
	}
	for _, r := range []*Record{
		rec(1, "", "203.0.113.10/32"),
		rec(2, "", "198.50.0.0/15"), // contains later requests
		rec(3, "www.example.net"),
		rec(4, "", "2001:db8:6401::1/128"),
	} {
		b.Restore(r)
	}
	for _, tc := range []struct {
		name string
		r    *Record
		want []uint32
	}{
		{"same bucket", rec(10, "", "203.0.113.0/24"), []uint32{1}},
		{"inside a wide request", rec(11, "", "198.51.100.1/32"), []uint32{2}},
		{"containing an existing request", rec(12, "", "203.0.0.0/14"), []uint32{1}},
		{"same name", rec(13, "www.example.net", "192.0.2.1/32"), []uint32{3}},
		{"IPv6", rec(14, "", "2001:db8:6401::/48"), []uint32{4}},
		{"nothing", rec(15, "", "192.0.2.1/32"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint32
			for _, o := range b.overlapping(tc.r) {
				got = append(got, o.MID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("overlapping = %v, want %v", got, tc.want)
			}
		})
	}
	// Removing a request removes it from the index.
	r1, _ := b.byClient["c"][1]
	b.drop(r1)
	if got := b.overlapping(rec(16, "", "203.0.113.10/32")); len(got) != 0 {
		t.Fatalf("removed request still indexed: %v", got)
	}
}
