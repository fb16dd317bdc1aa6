package metrics_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/metrics"
)

// TestBGP reads the embedded speaker with a real ExaBGP neighbor on
// loopback (and one that never answers): neighbors by state, routes by
// kind, the FlowSpec rules against the budget.
func TestBGP(t *testing.T) {
	exa := lab.StartExaBGP(t, lab.Options{})
	cfg := bgp.Config{LocalAS: 65001, RouterID: "192.0.2.254",
		Domains: map[string]bgp.DomainPolicy{"alpha": {RTBH: true, Countermeasure: "rtbh"}, "beta": {}},
		Neighbors: []bgp.Neighbor{
			{Name: "exabgp", Address: exa.Addr().Addr().String(), Port: uint32(exa.Addr().Port()), PeerAS: lab.PeerAS,
				LocalAddress: "127.0.0.1", FlowSpecBudget: 50},
			{Name: "silent", Address: "127.0.0.1", Port: uint32(closedPort(t)), PeerAS: lab.PeerAS, LocalAddress: "127.0.0.1",
				Receives: []string{bgp.KindRTBH}},
		}}
	b, err := bgp.New(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m := metrics.New(metrics.Options{})
	if err := m.Register(metrics.NewBGPCollector(b)); err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	exaL := map[string]string{"neighbor": "exabgp"}
	waitSample(t, reg, "levee_bgp_neighbor_established", exaL, 1)
	waitSample(t, reg, "levee_bgp_routes", map[string]string{"kind": bgp.KindRTBH}, 0)

	rtbh := divert.Diversion{Key: divert.Key{CUID: "alpha", MID: 1}, Domain: "alpha", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}
	fs := divert.Diversion{Key: divert.Key{CUID: "beta", MID: 1}, Domain: "beta", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.130/32")},
		Ports: []dots.PortRange{{LowerPort: 443}}, Protocols: []uint8{6}}
	for _, d := range []divert.Diversion{rtbh, fs} {
		if _, err := b.Apply(context.Background(), d); err != nil {
			t.Fatalf("apply %v: %v", d.Key, err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(exa.Routes()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := exa.Routes(); len(got) != 2 || !slices.ContainsFunc(got, func(r lab.Route) bool { return r.Prefix == "203.0.113.10/32" }) {
		t.Fatalf("ExaBGP has %s, want the RTBH route and the FlowSpec rule", lab.FormatRoutes(got))
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"levee_bgp_neighbors", map[string]string{"state": "established"}, 1},
		{"levee_bgp_neighbors", map[string]string{"state": "down"}, 1},
		{"levee_bgp_neighbor_established", map[string]string{"neighbor": "silent"}, 0},
		{"levee_bgp_neighbor_established_sessions_total", exaL, 1},
		{"levee_bgp_neighbor_routes", exaL, 2},
		{"levee_bgp_routes", map[string]string{"kind": bgp.KindRTBH}, 1},
		{"levee_bgp_routes", map[string]string{"kind": bgp.KindFlowSpec}, 1},
		{"levee_bgp_flowspec_rules", map[string]string{}, 1},
		{"levee_bgp_flowspec_budget_rules", exaL, 50},
	} {
		waitSample(t, reg, tc.name, tc.labels, tc.want)
	}
	if _, ok := sample(t, reg, "levee_bgp_flowspec_budget_rules", map[string]string{"neighbor": "silent"}); ok {
		t.Error("a budget exported for a neighbor that receives no FlowSpec")
	}
	if err := b.Withdraw(context.Background(), fs.Key); err != nil {
		t.Fatal(err)
	}
	waitSample(t, reg, "levee_bgp_flowspec_rules", map[string]string{}, 0)
	lint(t, reg)
}

// closedPort returns a loopback TCP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
