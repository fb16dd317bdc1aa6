package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/scrub"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // "" for valid
	}{
		{"defaults", nil, ""},
		{"all set", []string{"--runs", "5", "--packets", "2000000", "--duration", "2s", "--spread", "1", "--nice", "0"}, ""},
		{"runs 0", []string{"--runs", "0"}, "--runs"},
		{"runs over", []string{"--runs", "11"}, "--runs"},
		{"packets few", []string{"--packets", "10"}, "--packets"},
		{"packets over", []string{"--packets", "20000001"}, "--packets"},
		{"duration over", []string{"--duration", "21s"}, "--duration"},
		{"duration 0", []string{"--duration", "0s"}, "--duration"},
		{"spread over", []string{"--spread", "257"}, "--spread"},
		{"nice under", []string{"--nice", "-21"}, "--nice"},
		{"argument", []string{"extra"}, "unexpected argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want == "" && (o.runs < 1 || o.packets < 1 || o.duration <= 0):
				t.Fatalf("options %+v", o)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	cases := []struct {
		n, spread int
		hit       int
	}{{1, 256, 1}, {100, 256, 100}, {10_000, 256, 256}, {10_000, 1, 1}}
	for _, tc := range cases {
		d, dsts := desired(tc.n, tc.spread)
		if len(d.Mitigations) != tc.n || len(dsts) != tc.hit {
			t.Fatalf("n=%d spread=%d: %d mitigations, %d destinations", tc.n, tc.spread, len(d.Mitigations), len(dsts))
		}
		if dsts[0].Addr() != floorDst {
			t.Errorf("n=%d: first destination %v, want the floor's %v", tc.n, dsts[0], floorDst)
		}
		last := d.Mitigations[len(d.Mitigations)-1]
		if last.Targets[0] != netip.PrefixFrom(floorDst, 32) {
			t.Errorf("n=%d: the last mitigation's target is %v", tc.n, last.Targets[0])
		}
		hit := map[netip.Addr]bool{}
		for _, a := range dsts {
			hit[a.Addr()] = true
		}
		targets, ids := map[netip.Prefix]bool{}, map[string]bool{}
		nhit := 0
		for _, m := range d.Mitigations {
			p := m.Targets[0]
			if targets[p] || ids[m.ID] {
				t.Fatalf("n=%d: target %v or ID %s repeated", tc.n, p, m.ID)
			}
			targets[p], ids[m.ID] = true, true
			if hit[p.Addr()] {
				nhit++
			} else if !netip.MustParsePrefix("198.18.0.0/15").Contains(p.Addr()) {
				t.Errorf("n=%d: dummy target %v outside 198.18.0.0/15", tc.n, p)
			}
		}
		if nhit != tc.hit {
			t.Errorf("n=%d: %d mitigations hit, want %d", tc.n, nhit, tc.hit)
		}
	}
}

func TestDropped(t *testing.T) {
	c := scrub.Counters{Rules: map[string]map[string]scrub.Count{
		"a": {ruleName: {Packets: 3}}, "b": {ruleName: {Packets: 4}, "other": {Packets: 100}}}}
	if got := dropped(c); got != 7 {
		t.Fatalf("dropped %d, want 7", got)
	}
}

func TestFloorScript(t *testing.T) {
	want := `table netdev sbn_floor {
	chain in {
		type filter hook ingress device "sbn-b" priority -500; policy accept;
		ip daddr 203.0.113.10 udp sport 123 counter drop
	}
}
`
	if got := floorScript("sbn-b"); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParseNFTCounter(t *testing.T) {
	// As nft 1.0.6 prints `nft -j list table netdev sbn_floor`.
	const listing = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "netdev", "name": "sbn_floor", "handle": 1}}, {"chain": {"family": "netdev", "table": "sbn_floor", "name": "in", "handle": 1, "type": "filter", "hook": "ingress", "prio": -500, "policy": "accept"}}, {"rule": {"family": "netdev", "table": "sbn_floor", "chain": "in", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "203.0.113.10"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "sport"}}, "right": 123}}, {"counter": {"packets": 3000000, "bytes": 276000000}}, {"drop": null}]}}]}`
	n, err := parseNFTCounter([]byte(listing))
	if err != nil || n != 3_000_000 {
		t.Fatalf("got %d, %v", n, err)
	}
	for _, bad := range []string{`{"nftables": []}`, `not json`, `{"nftables": [{"rule": {"expr": [{"counter": "c1"}]}}]}`,
		`{"nftables": [{"rule": {"expr": [{"counter": {"packets": 1}}]}}, {"rule": {"expr": [{"counter": {"packets": 2}}]}}]}`} {
		if _, err := parseNFTCounter([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 3_000_000: "3,000,000", 12345678: "12,345,678"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %s, want %s", n, got, want)
		}
	}
}

func ok(pps float64) sample {
	const n = 3_000_000
	return sample{sent: n, counted: n, elapsed: time.Duration(float64(n) / pps * float64(time.Second))}
}

func results(floor, one, hundred, tenK []sample) []*result {
	rs := make([]*result, len(cases))
	for i, runs := range [][]sample{floor, one, hundred, tenK} {
		rs[i] = &result{c: cases[i], targets: 1, runs: runs}
	}
	rs[2].targets, rs[3].targets = 100, 256
	return rs
}

func TestReport(t *testing.T) {
	h := header{runs: 3, packets: 3_000_000, duration: 3 * time.Second, nice: -20, veth: "veth sbn-a → sbn-b", loadFrom: "1.00 1.00 1.00", loadTo: "2.00 1.00 1.00", cpus: 2}
	cases := []struct {
		name  string
		rs    []*result
		lines []string // each must appear, as fields, on one line
	}{
		{"pass", results([]sample{ok(1.80e6), ok(1.83e6), ok(1.79e6)}, []sample{ok(1.79e6), ok(1.70e6), ok(1.60e6)},
			[]sample{ok(1.78e6), ok(1.7e6), ok(1.7e6)}, []sample{ok(1.76e6), ok(1.7e6), ok(1.7e6)}), []string{
			"floor: hand-written nft 1 rule 1.83 Mpps 1.80 1.83 1.79 9,000,000 = sent",
			"levee 1 rule 1.79 Mpps 1.79 1.70 1.60 9,000,000 = sent floor/1 rule = 1.02 ≤ 1.20 PASS",
			"levee 100 rules (100 hit) 1.78 Mpps 1.78 1.70 1.70 9,000,000 = sent 1 rule/100 = 1.01",
			"levee 10,000 rules (256 hit) 1.76 Mpps 1.76 1.70 1.70 9,000,000 = sent 1 rule/10k = 1.02 ≤ 1.20 PASS",
		}},
		{"fail and refused", results([]sample{ok(2e6)}, []sample{ok(1e6)}, []sample{ok(1e6)},
			[]sample{{sent: 3_000_000, counted: 2_999_999, elapsed: time.Second}}), []string{
			"levee 1 rule 1.00 Mpps 1.00 3,000,000 = sent floor/1 rule = 2.00 ≤ 1.20 FAIL",
			"levee 10,000 rules (256 hit) no figure 3.00 refused: run 1 counted 2,999,999 of 3,000,000 sent 1 rule/10k = – ≤ 1.20 FAIL",
		}},
		{"floor skipped", func() []*result {
			rs := results(nil, []sample{ok(1e6)}, []sample{ok(1e6)}, []sample{ok(1e6)})
			rs[0].skipped = "nft CLI not found"
			return rs
		}(), []string{
			"floor: hand-written nft 1 rule skipped (nft CLI not found)",
			"levee 1 rule 1.00 Mpps 1.00 3,000,000 = sent floor/1 rule = – ≤ 1.20 n/a",
			"levee 10,000 rules (256 hit) 1.00 Mpps 1.00 3,000,000 = sent 1 rule/10k = 1.00 ≤ 1.20 PASS",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			report(&b, h, tc.rs)
			out := b.String()
			if !strings.Contains(out, "best of 3 runs of ≤ 3,000,000 packets or 3s") || !strings.Contains(out, "sender at nice -20; load average 1.00 1.00 1.00 at the start, 2.00 1.00 1.00 at the end (2 CPUs)") {
				t.Errorf("header missing:\n%s", out)
			}
			var got []string
			for _, l := range strings.Split(out, "\n") {
				got = append(got, strings.Join(strings.Fields(l), " "))
			}
			for _, want := range tc.lines {
				found := false
				for _, g := range got {
					found = found || g == want
				}
				if !found {
					t.Errorf("no line %q in\n%s", want, out)
				}
			}
		})
	}
}
