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

// TestValidate covers every refusal of the desired state; the agent
// answers with the same messages (scrub/agent), so each names the field,
// and the mitigation id and rule name where the problem does not.
func TestValidate(t *testing.T) {
	ok := func(id string, targets ...string) Mitigation {
		return Mitigation{ID: id, Targets: pfx(targets...), Rules: []Rule{{Name: "r"}}}
	}
	one := func(rules ...Rule) Desired {
		return Desired{Mitigations: []Mitigation{{ID: "a", Targets: pfx("203.0.113.1/32"), Rules: rules}}}
	}
	two := func(a, b Mitigation) Desired { return Desired{Mitigations: []Mitigation{a, b}} }
	tests := []struct {
		name   string
		d      Desired
		bounds Bounds
		want   string // the Detail; "" means valid
	}{
		{"empty", Desired{}, Bounds{}, ""},
		{"one", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.10/32", "2001:db8::/64")}}, Bounds{}, ""},
		{"overlap within is merged", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.0/24", "203.0.113.10/32")}}, Bounds{}, ""},
		{"v4 and v6 do not overlap", two(ok("a", "0.0.0.0/0"), ok("b", "::/0")), Bounds{}, ""},
		{"rule without action drops", one(Rule{Name: "x", Protocols: []uint8{6}, DstPorts: []PortRange{{80, 80}}}), Bounds{}, ""},

		{"empty id", Desired{Mitigations: []Mitigation{ok("", "203.0.113.10/32")}}, Bounds{}, "mitigations[0].id: empty"},
		{"long id", Desired{Mitigations: []Mitigation{ok(strings.Repeat("x", 129), "203.0.113.10/32")}}, Bounds{}, "mitigations[0].id: longer than 128 bytes"},
		{"duplicate id", two(ok("a", "203.0.113.10/32"), ok("a", "203.0.113.11/32")), Bounds{}, `mitigations[1].id: "a" is also mitigations[0]`},
		{"no targets", Desired{Mitigations: []Mitigation{ok("a")}}, Bounds{}, `mitigations[0].targets: a mitigation needs at least one target prefix (mitigation "a")`},
		{"bad prefix", Desired{Mitigations: []Mitigation{{ID: "a", Targets: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), {}}}}}, Bounds{}, `mitigations[0].targets[1]: not a prefix (mitigation "a")`},
		{"mapped", Desired{Mitigations: []Mitigation{ok("a", "::ffff:203.0.113.1/128")}}, Bounds{}, `mitigations[0].targets[0]: ::ffff:203.0.113.1/128 is IPv4-mapped; write it as IPv4 (mitigation "a")`},
		{"overlap across", two(ok("a", "203.0.113.0/24"), ok("b", "2001:db8::/32", "203.0.113.10/32")), Bounds{}, `mitigations[1].targets: 203.0.113.10/32 overlaps 203.0.113.0/24 of mitigations[0] "a" (mitigation "b")`},
		{"overlap, the later one contains", two(ok("a", "203.0.113.10/32"), ok("b", "203.0.113.0/24")), Bounds{}, `mitigations[1].targets: 203.0.113.0/24 overlaps 203.0.113.10/32 of mitigations[0] "a" (mitigation "b")`},

		{"too many mitigations", two(ok("a", "203.0.113.1/32"), ok("b", "203.0.113.2/32")), Bounds{MaxMitigations: 1}, "mitigations: 2 is more than this node accepts (1)"},
		{"too many targets in all", two(ok("a", "203.0.113.1/32"), ok("b", "203.0.113.2/32")), Bounds{MaxTargets: 1}, `mitigations[1].targets: more than 1 targets over all mitigations, which is what this node accepts (mitigation "b")`},
		{"too many targets in one", Desired{Mitigations: []Mitigation{ok("a", "203.0.113.1/32", "203.0.113.2/32")}}, Bounds{MaxMitigationTargets: 1}, `mitigations[0].targets: 2 is more than this node accepts (1) (mitigation "a")`},
		{"too many rules", one(Rule{Name: "x"}, Rule{Name: "y"}), Bounds{MaxRules: 1}, `mitigations[0].rules: 2 is more than this node accepts (1) (mitigation "a")`},
		{"too many sources", one(Rule{Name: "x", Sources: pfx("192.0.2.1/32", "192.0.2.2/32")}), Bounds{MaxSources: 1}, `mitigations[0].rules[0].sources: 2 is more than this node accepts (1) (mitigation "a", rule "x")`},

		{"empty rule name", one(Rule{}), Bounds{}, `mitigations[0].rules[0].name: empty (mitigation "a")`},
		{"duplicate rule", one(Rule{Name: "x"}, Rule{Name: "x"}), Bounds{}, `mitigations[0].rules[1].name: "x" is used twice in this mitigation (mitigation "a")`},
		{"bad action", one(Rule{Name: "x", Action: "reject"}), Bounds{}, `mitigations[0].rules[0].action: "reject": use "drop" or "accept" (mitigation "a", rule "x")`},
		{"bad source", one(Rule{Name: "x", Sources: []netip.Prefix{{}}}), Bounds{}, `mitigations[0].rules[0].sources[0]: not a prefix (mitigation "a", rule "x")`},
		{"src port range", one(Rule{Name: "x", SrcPorts: []PortRange{{1, 2}, {9, 8}}}), Bounds{}, `mitigations[0].rules[0].src-ports[1]: low 9 is above high 8 (mitigation "a", rule "x")`},
		{"dst port range", one(Rule{Name: "x", DstPorts: []PortRange{{9, 8}}}), Bounds{}, `mitigations[0].rules[0].dst-ports[0]: low 9 is above high 8 (mitigation "a", rule "x")`},
		{"ports with icmp", one(Rule{Name: "x", Protocols: []uint8{17, 1}, DstPorts: []PortRange{{8, 8}}}), Bounds{}, `mitigations[0].rules[0].protocols[1]: protocol 1 has no ports`},
		{"ports with fragment", one(Rule{Name: "x", Fragment: true, DstPorts: []PortRange{{8, 8}}}), Bounds{}, `mitigations[0].rules[0].fragment: a rule with ports cannot match fragments: non-first fragments carry no ports (mitigation "a", rule "x")`},
		{"lengths", one(Rule{Name: "x", MinLength: 100, MaxLength: 99}), Bounds{}, `mitigations[0].rules[0].min-length: 100 is above max-length 99 (mitigation "a", rule "x")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.d, tc.bounds)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v (%T), want a *FieldError wrapping ErrInvalid", err, err)
			}
			if !strings.HasPrefix(fe.Detail(), tc.want) {
				t.Fatalf("error %q, want %q", fe.Detail(), tc.want)
			}
			if err.Error() != ErrInvalid.Error()+": "+fe.Detail() {
				t.Fatalf("Error() %q is not ErrInvalid and the detail", err.Error())
			}
			if _, cerr := compile(tc.d, tc.bounds); cerr == nil || cerr.Error() != err.Error() {
				t.Fatalf("compile: %v, Validate: %v", cerr, err)
			}
		})
	}
}

func TestNormalise(t *testing.T) {
	v4, v6, err := normPrefixes("targets", pfx("203.0.113.77/24", "203.0.113.10/32", "198.51.100.0/24", "2001:db8::1/32", "2001:db8:1::/48"))
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
