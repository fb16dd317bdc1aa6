package bgp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/lab"
)

// aclEdges are FRR and ExaBGP, the two real routers the ACL tests peer with.
type aclEdges struct {
	frr *lab.FRR
	exa *lab.ExaBGP
}

func startACLEdges(t *testing.T, frrAddr, exaAddr string) *aclEdges {
	t.Helper()
	at := func(a string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), 0) }
	return &aclEdges{frr: lab.StartFRR(t, lab.Options{Addr: at(frrAddr)}), exa: lab.StartExaBGP(t, lab.Options{Addr: at(exaAddr)})}
}

// config peers with both routers, each with the given FlowSpec budget.
func (e *aclEdges) config(budget int) Config {
	cfg := Config{LocalAS: 65001, RouterID: "192.0.2.254", Domains: map[string]DomainPolicy{"beta": {}}}
	for _, p := range []lab.Peer{e.frr, e.exa} {
		cfg.Neighbors = append(cfg.Neighbors, Neighbor{Name: p.Name(), Address: p.Addr().Addr().String(), Port: uint32(p.Addr().Port()),
			PeerAS: lab.PeerAS, LocalAddress: "127.0.0.1", FlowSpecBudget: budget})
	}
	return cfg
}

// holds waits until each router holds exactly want.
func (e *aclEdges) holds(t *testing.T, what string, want []lab.Route) {
	t.Helper()
	ctx := context.Background()
	readers := map[string]func() ([]lab.Route, error){
		"frr": func() ([]lab.Route, error) { return e.frr.Routes(ctx) },
		"exabgp": func() ([]lab.Route, error) {
			if errs := e.exa.Errors(); len(errs) > 0 {
				t.Fatalf("exabgp output unreadable: %v", errs)
			}
			return e.exa.Routes(), nil
		},
	}
	for _, name := range []string{"frr", "exabgp"} {
		err := lab.WaitFor(ctx, 30*time.Second, func() (bool, string) {
			got, err := readers[name]()
			if err != nil {
				return false, err.Error()
			}
			d := lab.Diff(want, got)
			return d == "", name + " holds\n" + lab.FormatRoutes(got) + "\ndiff:\n" + d
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

func established(t *testing.T, b *Backend) {
	t.Helper()
	waitFor(t, "neighbors up", func() bool {
		for _, n := range b.Neighbors() {
			if !n.Established {
				return false
			}
		}
		return true
	})
}

// exaLine returns the index of the first message ExaBGP received whose
// update has, under section ("announce" or "withdraw"), an IPv4 FlowSpec
// rule whose source component is src; -1 if none.
func exaLine(t *testing.T, e *lab.ExaBGP, section, src string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.Dir(), "received.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Source []string `json:"source-ipv4"`
	}
	has := func(rs []rule) bool {
		for _, r := range rs {
			if slices.Contains(r.Source, src) {
				return true
			}
		}
		return false
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		var m struct {
			Neighbor struct {
				Message struct {
					Update struct {
						Announce map[string]map[string][]rule `json:"announce"`
						Withdraw map[string][]rule            `json:"withdraw"`
					} `json:"update"`
				} `json:"message"`
			} `json:"neighbor"`
		}
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		u := m.Neighbor.Message.Update
		if section == "withdraw" && has(u.Withdraw["ipv4 flow"]) {
			return i
		}
		for _, rs := range u.Announce["ipv4 flow"] {
			if section == "announce" && has(rs) {
				return i
			}
		}
	}
	return -1
}

// TestACLAtRealPeers: an ACL dropping a source prefix and rate-limiting TCP
// SYNs (RFC 8783 §7.3 and Appendix B.2), plus an IPv6 entry and an accept
// entry, reaches FRR and ExaBGP as exactly the matching FlowSpec rules
// (RFC 8955, RFC 8956) with traffic-rate-bytes 0 and 20; an update of the
// ACL is announced before the rule it replaces is withdrawn; after a
// restart, Sync announces exactly the set it is given; a withdrawal leaves
// nothing at either router.
func TestACLAtRealPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts FRR and ExaBGP")
	}
	e := startACLEdges(t, "127.0.0.51", "127.0.0.52")
	cfg := e.config(0)
	ctx := context.Background()
	first, err := New(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			first.Close()
		}
	})
	if err := first.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	established(t, first)

	accept := dropFrom("203.0.113.0/24", "198.51.100.0/24")
	accept.Accept = true
	v1 := aclDiversion("beta", "edge-acl", accept, dropFrom("203.0.113.0/24", "192.0.2.0/24"), synLimit("203.0.113.0/24", 20),
		dropFrom("2001:db8:6401::/48", "2001:db8:bad::/48"))
	a, err := first.Apply(ctx, v1)
	if err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply: %v %+v", err, a)
	}
	for _, want := range []string{"-> frr, exabgp", "accept entries 1 {dst 203.0.113.0/24 src 198.51.100.0/24} not enforced by FlowSpec"} {
		if !strings.Contains(a.Detail, want) {
			t.Errorf("detail %q\nwant it to contain %q", a.Detail, want)
		}
	}
	drop := func(src string) lab.Route {
		return lab.Route{Family: lab.IPv4FlowSpec, Actions: []string{"discard"},
			FlowSpec: map[string]string{"destination": "203.0.113.0/24", "source": src}}
	}
	syn := lab.Route{Family: lab.IPv4FlowSpec, Actions: []string{"rate-limit 20"},
		FlowSpec: map[string]string{"destination": "203.0.113.0/24", "protocol": "=6", "tcp-flags": "=2"}}
	drop6 := lab.Route{Family: lab.IPv6FlowSpec, Actions: []string{"discard"},
		FlowSpec: map[string]string{"destination": "2001:db8:6401::/48", "source": "2001:db8:bad::/48"}}
	e.holds(t, "the ACL's rules", []lab.Route{drop("192.0.2.0/24"), syn, drop6})

	// The source entry narrows: its new rule is on the wire before the
	// old one is withdrawn.
	v2 := aclDiversion("beta", "edge-acl", dropFrom("203.0.113.0/24", "192.0.2.0/25"), synLimit("203.0.113.0/24", 20),
		dropFrom("2001:db8:6401::/48", "2001:db8:bad::/48"))
	if a, err := first.Apply(ctx, v2); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("update: %v %+v", err, a)
	}
	e.holds(t, "the updated rules", []lab.Route{drop("192.0.2.0/25"), syn, drop6})
	announced, withdrawn := exaLine(t, e.exa, "announce", "192.0.2.0/25"), exaLine(t, e.exa, "withdraw", "192.0.2.0/24")
	if announced < 0 || withdrawn < 0 || announced > withdrawn {
		t.Fatalf("exabgp got the new rule in message %d and the withdrawal of the old one in message %d: want the announcement first", announced, withdrawn)
	}

	// A restart: the routers drop the rules with the sessions, and the new
	// speaker's Sync brings back exactly the set it is given.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	e.holds(t, "nothing after the stop", nil)
	other := aclDiversion("beta", "second", dropFrom("203.0.113.0/24", "198.51.100.0/24"))
	b, _ := newSpeaker(t, cfg)
	if err := b.Sync(ctx, []divert.Diversion{v2, other}); err != nil {
		t.Fatal(err)
	}
	e.holds(t, "the synced set", []lab.Route{drop("192.0.2.0/25"), drop("198.51.100.0/24"), syn, drop6})

	for _, k := range []divert.Key{v2.Key, other.Key} {
		if err := b.Withdraw(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	e.holds(t, "nothing after the withdrawal", nil)
}

// TestACLBudgetAtRealPeers: with a FlowSpec budget of 1, a 2-rule ACL is
// refused as exceeding capability and nothing of it reaches FRR or ExaBGP;
// a 1-rule ACL after it does, alone.
func TestACLBudgetAtRealPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts FRR and ExaBGP")
	}
	e := startACLEdges(t, "127.0.0.53", "127.0.0.54")
	b, _ := newSpeaker(t, e.config(1))
	ctx := context.Background()
	if err := b.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	established(t, b)
	two := aclDiversion("beta", "two", dropFrom("203.0.113.0/24", "192.0.2.0/24"), synLimit("203.0.113.0/24", 20))
	a, err := b.Apply(ctx, two)
	if err != nil || a.Status != dots.StatusExceededCapability || !strings.Contains(a.Detail, "2 FlowSpec rules would exceed the budget of 1 for neighbor frr; nothing announced") {
		t.Fatalf("apply over budget: %v %+v", err, a)
	}
	one := aclDiversion("beta", "one", dropFrom("203.0.113.0/24", "198.51.100.0/24"))
	if a, err := b.Apply(ctx, one); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply within budget: %v %+v", err, a)
	}
	e.holds(t, "only the rule within budget", []lab.Route{{Family: lab.IPv4FlowSpec, Actions: []string{"discard"},
		FlowSpec: map[string]string{"destination": "203.0.113.0/24", "source": "198.51.100.0/24"}}})
	for _, k := range []divert.Key{two.Key, one.Key} {
		if err := b.Withdraw(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	e.holds(t, "nothing after the withdrawal", nil)
}
