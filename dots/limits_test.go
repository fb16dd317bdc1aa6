package dots

import (
	"fmt"
	"strings"
	"testing"
)

// fqdnOfLen is a valid domain name of exactly n characters (n >= 1).
func fqdnOfLen(n int) string {
	var labels []string
	for n > 0 {
		l := min(n, 63)
		if n-l == 1 { // a label must not be left with no room after its dot
			l--
		}
		labels = append(labels, strings.Repeat("a", l))
		n -= l + 1
	}
	return strings.Join(labels, ".")
}

func prefixes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("2001:db8:%x::/48", i+1)
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", s, i)
	}
	return out
}

// TestAttributeLimits: every list and string attribute of a mitigation
// request is refused one past its bound with a 4.00 naming the attribute,
// the entry and the bound, and accepted at the bound.
func TestAttributeLimits(t *testing.T) {
	uri := func(n int) string {
		return "https://www.example.com/" + strings.Repeat("p", n-len("https://www.example.com/"))
	}
	tests := []struct {
		name string
		at   func(*Scope) // at the bound: accepted
		over func(*Scope) // one past it: refused
		diag string
	}{
		{"target-fqdn length",
			func(s *Scope) { s.TargetFQDN = []string{"a.example", fqdnOfLen(253)} },
			func(s *Scope) { s.TargetFQDN = []string{"a.example", "b.example", "c.example", fqdnOfLen(300)} },
			"target-fqdn[3]: 300 bytes, at most 253"},
		{"target-uri length",
			func(s *Scope) { s.TargetURI = []string{uri(2048)} },
			func(s *Scope) { s.TargetURI = []string{uri(2049)} },
			"target-uri[0]: 2049 bytes, at most 2048"},
		{"target-prefix text length",
			func(s *Scope) { s.TargetPrefix = []string{"2001:0db8:0000:0000:0000:0000:0000:0001/128"} },
			func(s *Scope) {
				s.TargetPrefix = []string{"203.0.113.0/24", "203.0.113.1/" + strings.Repeat("0", 60) + "32"}
			},
			"target-prefix[1]: 74 bytes, at most 49"},
		{"alias-name length",
			func(s *Scope) { s.AliasName = []string{strings.Repeat("x", 255)} },
			func(s *Scope) { s.AliasName = []string{strings.Repeat("x", 1<<20)} },
			"alias-name[0]: 1048576 bytes, at most 255"},
		{"acl-name length",
			func(s *Scope) { s.ACLList = []ACLControl{{ACLName: strings.Repeat("n", 255)}} },
			func(s *Scope) { s.ACLList = []ACLControl{{ACLName: "a"}, {ACLName: strings.Repeat("n", 256)}} },
			"acl-list[1].acl-name: 256 bytes, at most 255"},
		{"countermeasure length",
			func(s *Scope) { s.Countermeasure = strings.Repeat("c", 64) },
			func(s *Scope) { s.Countermeasure = strings.Repeat("c", 1<<20) },
			"levee:countermeasure: 1048576 bytes, at most 64"},
		{"note length",
			func(s *Scope) { s.Note = strings.Repeat("n", 1024) },
			func(s *Scope) { s.Note = strings.Repeat("n", 1025) },
			"levee:note: 1025 bytes, at most 1024"},
		{"target-prefix entries",
			func(s *Scope) { s.TargetPrefix = prefixes(256) },
			func(s *Scope) { s.TargetPrefix = prefixes(257) },
			"target-prefix: 257 entries, at most 256"},
		{"target-port-range entries",
			func(s *Scope) { s.TargetPortRange = make([]PortRange, 128) },
			func(s *Scope) { s.TargetPortRange = make([]PortRange, 129) },
			"target-port-range: 129 entries, at most 128"},
		{"target-protocol entries",
			func(s *Scope) { s.TargetProtocol = make([]uint32, 256) },
			func(s *Scope) { s.TargetProtocol = make([]uint32, 4096) },
			"target-protocol: 4096 entries, at most 256"},
		{"target-fqdn entries",
			func(s *Scope) { s.TargetFQDN = repeat("h.example", 64) },
			func(s *Scope) { s.TargetFQDN = repeat("h.example", 65) },
			"target-fqdn: 65 entries, at most 64"},
		{"target-uri entries",
			func(s *Scope) { s.TargetURI = repeat("https://h.example/", 64) },
			func(s *Scope) { s.TargetURI = repeat("https://h.example/", 65) },
			"target-uri: 65 entries, at most 64"},
		{"alias-name entries",
			func(s *Scope) { s.AliasName = repeat("alias", 64) },
			func(s *Scope) { s.AliasName = repeat("alias", 65) },
			"alias-name: 65 entries, at most 64"},
		{"acl-list entries",
			func(s *Scope) { s.ACLList = make([]ACLControl, 64) },
			func(s *Scope) { s.ACLList = make([]ACLControl, 65) },
			"acl-list: 65 entries, at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseMitigationRequest(req(tc.at)); err != nil {
				t.Fatalf("at the bound: refused: %v", err)
			}
			// Through the codec, as a server receives it.
			m, err := Decode(MustEncode(req(tc.over)))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			_, err = ParseMitigationRequest(m)
			if CodeOf(err) != BadRequest {
				t.Fatalf("over the bound: %v, want 4.00", err)
			}
			if got := err.(*Error).Diag; !strings.HasPrefix(got, tc.diag) {
				t.Fatalf("diagnostic %q, want it to start with %q", got, tc.diag)
			}
			if len(err.(*Error).Diag) > 200 {
				t.Fatalf("diagnostic of %d bytes echoes the value", len(err.(*Error).Diag))
			}
		})
	}
}

func TestAttributeLimitsDocumented(t *testing.T) {
	for _, a := range AttributeLimits {
		if s := a.String(); !strings.HasPrefix(s, a.Name+": at most ") {
			t.Errorf("%+v renders as %q", a, s)
		}
	}
}
