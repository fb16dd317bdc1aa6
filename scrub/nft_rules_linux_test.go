package scrub

import (
	"testing"

	"github.com/google/nftables"
)

// TestRuleTranslation compares each rule's expressions, rendered as text,
// with the expected program.
func TestRuleTranslation(t *testing.T) {
	const c = "counter(r_x)"
	tests := []struct {
		name   string
		rule   Rule
		v6     bool
		golden string
	}{
		{"drop all", Rule{Name: "x"}, false, c + " drop"},
		{"accept", Rule{Name: "x", Action: ActionAccept}, false, c + " accept"},
		{"udp sport 123", Rule{Name: "x", Protocols: []uint8{17}, SrcPorts: []PortRange{{123, 123}}}, false,
			"meta(16) ==11 th[0:2] ==007b " + c + " drop"},
		{"ports imply port protocols", Rule{Name: "x", DstPorts: []PortRange{{53, 53}, {1000, 2000}, {65000, 65535}}}, false,
			"meta(16) in{06,11,21,84,88} th[2:4] in{0035,<0036,03e8,<07d1,fde8} " + c + " drop"},
		{"port range", Rule{Name: "x", Protocols: []uint8{6}, DstPorts: []PortRange{{80, 90}}}, false,
			"meta(16) ==06 th[2:4] in[0050-005a] " + c + " drop"},
		{"one source", Rule{Name: "x", Sources: pfx("192.0.2.0/24", "2001:db8::/32")}, false,
			"nh[12:16] &ffffff00 ==c0000200 " + c + " drop"},
		{"one source v6", Rule{Name: "x", Sources: pfx("192.0.2.0/24", "2001:db8::1/128")}, true,
			"nh[8:24] ==20010db8000000000000000000000001 " + c + " drop"},
		{"sources set", Rule{Name: "x", Sources: pfx("192.0.2.0/25", "198.51.100.7/32", "255.255.255.255/32")}, false,
			"nh[12:16] in{c0000200,<c0000280,c6336407,<c6336408,ffffffff} " + c + " drop"},
		{"fragments", Rule{Name: "x", Fragment: true}, false, "nh[6:8] &1fff !=0000 " + c + " drop"},
		{"length", Rule{Name: "x", Protocols: []uint8{1}, MinLength: 1000, MaxLength: 1500}, false,
			"meta(16) ==01 meta(0) hton >=000003e8 <=000005dc " + c + " drop"},
		{"rate", Rule{Name: "x", Protocols: []uint8{6, 17}, RatePPS: 1000}, false,
			"meta(16) in{06,11} limit-over(1000/s,burst 1000) " + c + " drop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp, err := compileRule(tc.rule, Bounds{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			b := &builder{table: &nftables.Table{Name: "levee", Family: nftables.TableFamilyNetdev}}
			if got := render(b.rule(&rp, "r_x", tc.v6)); got != tc.golden {
				t.Errorf("\n got %s\nwant %s", got, tc.golden)
			}
		})
	}
}

func TestRuleFamilies(t *testing.T) {
	tests := []struct {
		rule   Rule
		v4, v6 bool
	}{
		{Rule{Name: "any"}, true, true},
		{Rule{Name: "v4 sources", Sources: pfx("192.0.2.0/24")}, true, false},
		{Rule{Name: "v6 sources", Sources: pfx("2001:db8::/32")}, false, true},
		{Rule{Name: "fragment", Fragment: true}, true, false},
	}
	for _, tc := range tests {
		rp, err := compileRule(tc.rule, Bounds{}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		if rp.hasFamily(false) != tc.v4 || rp.hasFamily(true) != tc.v6 {
			t.Errorf("%s: v4 %v v6 %v, want %v %v", tc.rule.Name, rp.hasFamily(false), rp.hasFamily(true), tc.v4, tc.v6)
		}
	}
}
