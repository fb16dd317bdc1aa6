package main

import (
	"net/netip"
	"testing"
)

// TestTargets: the targets of phases 5 and 6 are distinct and inside what
// the "load" client owns in each phase.
func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		target func(int) string
		owned  []string
	}{
		{"phase 5", 5000, routeTarget, []string{"203.0.113.0/24", "2001:db8:6401::/48"}},
		{"phase 6", 65536, restartTarget, restartPrefixes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[netip.Prefix]bool{}
			for i := range tc.n {
				p := netip.MustParsePrefix(tc.target(i))
				if seen[p] {
					t.Fatalf("target %d (%s) repeats an earlier one", i, p)
				}
				seen[p] = true
				in := false
				for _, o := range tc.owned {
					in = in || netip.MustParsePrefix(o).Contains(p.Addr())
				}
				if !in || !p.IsSingleIP() {
					t.Fatalf("target %d (%s) is not a single address inside %v", i, p, tc.owned)
				}
			}
		})
	}
}

func TestBirdCount(t *testing.T) {
	for i, tc := range []struct {
		out  string
		want int
		ok   bool
	}{
		{"BIRD 2.0.12 ready.\n10000 of 10000 routes for 10000 networks in table flowtab4\n", 10000, true},
		{"0 of 0 routes for 0 networks in table flowtab6\n", 0, true},
		{"BIRD 2.0.12 ready.\nsyntax error\n", 0, false},
	} {
		n, err := birdCount(tc.out)
		if (err == nil) != tc.ok || n != tc.want {
			t.Errorf("%d: birdCount = %d, %v; want %d (ok %v)", i, n, err, tc.want, tc.ok)
		}
	}
}

// TestExaTable: announcements add rules, withdrawals remove them, a session
// going down clears them; unicast routes are not counted.
func TestExaTable(t *testing.T) {
	x := &exaTable{flows: map[string]bool{}}
	lines := []string{
		`{"type": "state", "neighbor": {"state": "up"}}`,
		`{"type": "update", "neighbor": {"message": {"update": {"announce": {"ipv4 flow": {"no-nexthop": [{"destination-ipv4": ["203.0.113.1/32"], "string": "flow destination-ipv4 203.0.113.1/32"}, {"destination-ipv4": ["203.0.113.2/32"], "string": "flow destination-ipv4 203.0.113.2/32"}]}}}}}}`,
		`{"type": "update", "neighbor": {"message": {"update": {"announce": {"ipv4 unicast": {"192.0.2.1": [{"nlri": "203.0.113.9/32"}]}}}}}}`,
		`{"type": "update", "neighbor": {"message": {"update": {"withdraw": {"ipv4 flow": [{"destination-ipv4": ["203.0.113.1/32"], "string": "flow destination-ipv4 203.0.113.1/32"}]}}}}}`,
		`{"type": "update", "neighbor": {"message": {"eor": {"afi": "ipv4", "safi": "flow"}}}}`,
	}
	for i, l := range lines {
		if err := x.apply([]byte(l)); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	if !x.up || len(x.flows) != 1 || !x.flows["ipv4 flow flow destination-ipv4 203.0.113.2/32"] {
		t.Fatalf("up %v, flows %v; want up and only 203.0.113.2/32", x.up, x.flows)
	}
	if err := x.apply([]byte(`{"type": "state", "neighbor": {"state": "down"}}`)); err != nil {
		t.Fatal(err)
	}
	if x.up || len(x.flows) != 0 {
		t.Fatalf("after down: up %v, flows %v", x.up, x.flows)
	}
}
