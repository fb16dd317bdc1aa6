package scrub

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestCompile(t *testing.T) {
	ok := func(id string, targets ...string) Mitigation {
		return Mitigation{ID: id, Targets: pfx(targets...), Rules: []Rule{{Name: "r"}}}
	}
	tests := []struct {
		name    string
		d       Desired
		bounds  Bounds
		wantErr string // "" means valid
	}{
		{"empty", Desired{}, Bounds{}, ""},
		{"one", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.10/32", "2001:db8::/64")}}, Bounds{}, ""},
		{"empty id", Desired{Mitigations: []Mitigation{ok("", "203.0.113.10/32")}}, Bounds{}, "empty id"},
		{"duplicate id", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.10/32"), ok("a", "203.0.113.11/32")}}, Bounds{}, "duplicate id"},
		{"no targets", Desired{Mitigations: []Mitigation{ok("a")}}, Bounds{}, "no targets"},
		{"bad prefix", Desired{Mitigations: []Mitigation{{ID: "a", Targets: []netip.Prefix{{}}}}}, Bounds{}, "invalid prefix"},
		{"mapped", Desired{Mitigations: []Mitigation{ok("a", "::ffff:203.0.113.1/128")}}, Bounds{}, "IPv4-mapped"},
		{"overlap across", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.0/24"), ok("b", "203.0.113.10/32")}}, Bounds{}, "overlaps"},
		{"overlap within is merged", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.0/24", "203.0.113.10/32")}}, Bounds{}, ""},
		{"v4 and v6 do not overlap", Desired{Mitigations: []Mitigation{ok("a", "0.0.0.0/0"), ok("b", "::/0")}}, Bounds{}, ""},
		{"too many mitigations", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.1/32"), ok("b", "203.0.113.2/32")}}, Bounds{MaxMitigations: 1}, "the bound is 1"},
		{"too many targets", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.1/32", "203.0.113.2/32")}}, Bounds{MaxTargets: 1}, "more than 1 targets"},
		{"too many rules", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x"}, {Name: "y"}}}}}, Bounds{MaxRules: 1}, "2 rules, the bound is 1"},
		{"duplicate rule", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x"}, {Name: "x"}}}}}, Bounds{}, "duplicate rule name"},
		{"empty rule name", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{}}}}}, Bounds{}, "empty name"},
		{"bad action", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x", Action: "reject"}}}}}, Bounds{}, `action "reject"`},
		{"port range", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x", DstPorts: []PortRange{{9, 8}}}}}}}, Bounds{}, "low above high"},
		{"ports with icmp", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x", Protocols: []uint8{1}, DstPorts: []PortRange{{8, 8}}}}}}}, Bounds{}, "has no ports"},
		{"ports with fragment", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x", Fragment: true, DstPorts: []PortRange{{8, 8}}}}}}}, Bounds{}, "non-first fragments"},
		{"lengths", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x", MinLength: 100, MaxLength: 99}}}}}, Bounds{}, "min-length 100 above"},
		{"too many sources", Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: []Rule{{Name: "x", Sources: pfx("192.0.2.1/32", "192.0.2.2/32")}}}}}, Bounds{MaxSources: 1}, "2 sources, the bound is 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compile(tc.d, tc.bounds)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case err != nil && !errors.Is(err, ErrInvalid):
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestNormalise(t *testing.T) {
	v4, v6, err := normPrefixes(pfx("203.0.113.77/24", "203.0.113.10/32", "198.51.100.0/24", "2001:db8::1/32", "2001:db8:1::/48"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := join(v4), "198.51.100.0/24 203.0.113.0/24"; got != want {
		t.Errorf("v4 %q, want %q", got, want)
	}
	if got, want := join(v6), "2001:db8::/32"; got != want {
		t.Errorf("v6 %q, want %q", got, want)
	}
	ports := mergePorts([]PortRange{{100, 200}, {10, 20}, {201, 300}, {15, 30}, {1000, 1000}})
	want := []PortRange{{10, 30}, {100, 300}, {1000, 1000}}
	if len(ports) != len(want) {
		t.Fatalf("ports %v, want %v", ports, want)
	}
	for i := range want {
		if ports[i] != want[i] {
			t.Fatalf("ports %v, want %v", ports, want)
		}
	}
}

func join(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}

func TestCounterNames(t *testing.T) {
	tests := []struct{ id, rule, mit, ruleName string }{
		{"cuid1/1", "ntp", "m_", "r_"},
		{"cuid1/2", "ntp", "m_", "r_"},
		{"a-very-long-client-identifier-" + strings.Repeat("x", 300) + "/4294967295", "a rule name with spaces", "m_", "r_"},
	}
	seen := map[string]string{}
	for _, tc := range tests {
		m, r := MitigationCounterName(tc.id), RuleCounterName(tc.id, tc.rule)
		if !strings.HasPrefix(m, tc.mit) || len(m) != 18 {
			t.Errorf("%q: mitigation counter %q", tc.id, m)
		}
		if !strings.HasPrefix(r, tc.ruleName) || len(r) != 31 || r[2:18] != m[2:] {
			t.Errorf("%q/%q: rule counter %q", tc.id, tc.rule, r)
		}
		if MitigationCounterName(tc.id) != m {
			t.Errorf("%q: name not stable", tc.id)
		}
		for _, n := range []string{m, r} {
			if o, ok := seen[n]; ok {
				t.Errorf("%q and %q share %q", o, tc.id, n)
			}
			seen[n] = tc.id
		}
	}
	if got, want := MitigationCounterName("cuid1/1"), "m_"+hash("cuid1/1", 16); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
