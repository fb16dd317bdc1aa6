package scrub

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateACLs covers the refusals of ACLs: destinations outside the
// ACL's targets, the per-node rule cap, and matches that never hold.
func TestValidateACLs(t *testing.T) {
	acl := func(es ...Entry) Desired {
		return Desired{ACLs: []ACL{{ID: "c/acl/a", Group: "c", Targets: pfx("203.0.113.0/24"), Entries: es}}}
	}
	many := make([]Entry, 0, 600)
	for i := range 600 {
		many = append(many, Entry{Name: strings.Repeat("x", 1+i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Action: ActionDrop})
	}
	tests := []struct {
		name string
		d    Desired
		b    Bounds
		want string // "" accepted
	}{
		{"drop source", acl(Entry{Name: "e", Sources: pfx("192.0.2.0/24"), Action: ActionDrop}), Bounds{}, ""},
		{"overlaps a mitigation", Desired{Mitigations: []Mitigation{{ID: "c/1", Targets: pfx("203.0.113.10/32")}},
			ACLs: acl(Entry{Name: "e", Action: ActionDrop}).ACLs}, Bounds{}, ""},
		{"destination outside", acl(Entry{Name: "e", Destinations: pfx("198.51.100.0/24"), Action: ActionDrop}), Bounds{},
			"acls[0].entries[0].destinations: 198.51.100.0/24 is not inside the ACL's targets"},
		{"wider destination", acl(Entry{Name: "e", Destinations: pfx("203.0.112.0/23"), Action: ActionDrop}), Bounds{},
			"is not inside the ACL's targets"},
		{"no targets", Desired{ACLs: []ACL{{ID: "x", Entries: []Entry{{Name: "e", Action: ActionDrop}}}}}, Bounds{}, "acls[0].targets"},
		{"rate without rate", acl(Entry{Name: "e", Action: ActionRateLimit}), Bounds{}, "rate above 0"},
		{"unknown action", acl(Entry{Name: "e", Action: "reject"}), Bounds{}, `"reject"`},
		{"duplicate entry", acl(Entry{Name: "e", Action: ActionDrop}, Entry{Name: "e", Action: ActionAccept}), Bounds{}, "used twice"},
		{"tcp flags of udp", acl(Entry{Name: "e", Protocols: []uint8{17}, TCPFlags: []BitTerm{{Bits: 2}}, Action: ActionDrop}), Bounds{}, "never match"},
		{"flags never match", acl(Entry{Name: "e", TCPFlags: []BitTerm{{Bits: 2, Match: true}, {Bits: 2, Not: true, And: true}}, Action: ActionDrop}), Bounds{}, "no combination"},
		{"beyond the rule cap", acl(many...), Bounds{}, "more than 1024 nftables rules"},
		{"under a raised cap", acl(many...), Bounds{MaxACLRules: 2000}, ""},
		{"fragments with ports", acl(Entry{Name: "e", DstPorts: []PortRange{{53, 53}}, Fragments: []BitTerm{{Bits: FragIsF}}, Action: ActionDrop}), Bounds{}, "fragment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.d, tc.b)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid)):
				t.Fatalf("got %v, want an ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

// TestBitTerms: RFC 8783 flags-bitmask and fragment operators, evaluated
// left to right.
func TestBitTerms(t *testing.T) {
	tests := []struct {
		name  string
		terms []BitTerm
		mask  uint16
		vals  []uint16
	}{
		{"match syn", []BitTerm{{Bits: 0x02, Match: true}}, 0x02, []uint16{0x02}},
		{"syn and not ack", []BitTerm{{Bits: 0x02, Match: true}, {Bits: 0x10, Not: true, And: true}}, 0x12, []uint16{0x02}},
		{"not any 4095 (null scan)", []BitTerm{{Bits: 0x0fff, Not: true}}, 0x0fff, []uint16{0}},
		{"any fin or rst", []BitTerm{{Bits: 0x05}}, 0x05, []uint16{1, 4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, v := tcpValues(tc.terms)
			if m != tc.mask || len(v) != len(tc.vals) {
				t.Fatalf("got mask %#x values %v, want %#x %v", m, v, tc.mask, tc.vals)
			}
			for i := range v {
				if v[i] != tc.vals[i] {
					t.Fatalf("got values %v, want %v", v, tc.vals)
				}
			}
		})
	}
	if got := fragClasses([]BitTerm{{Bits: FragIsF, Match: true}}); len(got) != 2 || got[0].class != fragMiddle || got[1].class != fragLast {
		t.Fatalf("is-fragment classes %+v, want middle and last", got)
	}
}
