package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/flowspec"
)

// peer is a second, in-process GoBGP acting as an edge router (passive, AS 65000).
type peer struct {
	s    *server.BgpServer
	addr string
	port int
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startPeer(t testing.TB, addr string, families ...gbgp.Family) *peer {
	t.Helper()
	return startPeerMD5(t, addr, "", families...)
}

// startPeerMD5 is startPeer with a TCP-MD5 password ("" for none).
func startPeerMD5(t testing.TB, addr, password string, families ...gbgp.Family) *peer {
	t.Helper()
	p := &peer{s: server.NewBgpServer(), addr: addr, port: freePort(t, addr)}
	go p.s.Serve()
	ctx := context.Background()
	if err := p.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: addr,
		ListenPort: int32(p.port), ListenAddresses: []string{addr}}}); err != nil {
		t.Fatal(err)
	}
	var afs []*api.AfiSafi
	for _, f := range families {
		afs = append(afs, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiutil.ToApiFamily(f.Afi(), f.Safi()), Enabled: true}})
	}
	if err := p.s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{Conf: &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001, AuthPassword: password},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: addr}, AfiSafis: afs}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.s.StopBgp(context.Background(), &api.StopBgpRequest{}); p.s.Stop() })
	return p
}

// routes lists what the peer received in one family, as text.
func (p *peer) routes(t *testing.T, f gbgp.Family) []string {
	t.Helper()
	var out []string
	err := p.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(n gbgp.NLRI, paths []*apiutil.Path) {
		for _, path := range paths {
			var attrs []string
			for _, a := range path.Attrs {
				switch a := a.(type) {
				case *gbgp.PathAttributeCommunities:
					attrs = append(attrs, a.String())
				case *gbgp.PathAttributeExtendedCommunities:
					attrs = append(attrs, a.String())
				case *gbgp.PathAttributeNextHop:
					attrs = append(attrs, "nh "+a.Value.String())
				case *gbgp.PathAttributeMpReachNLRI:
					if len(a.Nexthop.AsSlice()) > 0 && a.Nexthop.IsValid() {
						attrs = append(attrs, "nh "+a.Nexthop.String())
					}
				}
			}
			out = append(out, n.String()+" "+strings.Join(attrs, " "))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type recorder struct {
	mu  sync.Mutex
	got map[divert.Key]divert.Applied
}

func (r *recorder) update(_ string, k divert.Key, a divert.Applied) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[k] = a
}

func (r *recorder) status(k divert.Key) dots.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[k].Status
}

func newSpeaker(t *testing.T, cfg Config) (*Backend, *recorder) {
	t.Helper()
	rec := &recorder{got: map[divert.Key]divert.Applied{}}
	b, err := New(context.Background(), cfg, nil, rec.update)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, rec
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func baseConfig(peers ...*peer) Config {
	cfg := Config{LocalAS: 65001, RouterID: "192.0.2.254",
		Domains: map[string]DomainPolicy{"alpha": {RTBH: true, Countermeasure: "rtbh"}, "beta": {}}}
	for i, p := range peers {
		cfg.Neighbors = append(cfg.Neighbors, Neighbor{Name: fmt.Sprintf("edge%d", i+1), Address: p.addr, Port: uint32(p.port),
			PeerAS: 65000, LocalAddress: "127.0.0.1"})
	}
	return cfg
}

var all4 = []gbgp.Family{gbgp.RF_IPv4_UC, gbgp.RF_IPv6_UC, gbgp.RF_FS_IPv4_UC, gbgp.RF_FS_IPv6_UC}

func TestAnnounceAndWithdraw(t *testing.T) {
	p := startPeer(t, "127.0.0.21", all4...)
	b, rec := newSpeaker(t, baseConfig(p))
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	k1 := divert.Key{CUID: "alpha", MID: 1}
	rtbh := divert.Diversion{Key: k1, Domain: "alpha", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("2001:db8:6401::10/128")}}
	waitFor(t, "neighbor up", func() bool { return len(b.Neighbors()) == 1 && b.Neighbors()[0].Established })
	a, err := b.Apply(context.Background(), rtbh)
	if err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply rtbh: %v %+v", err, a)
	}
	waitFor(t, "rtbh v4 at the peer", func() bool {
		r := p.routes(t, gbgp.RF_IPv4_UC)
		return len(r) == 1 && strings.Contains(r[0], "203.0.113.10/32") && strings.Contains(r[0], "blackhole, no-export") && strings.Contains(r[0], "nh 192.0.2.1")
	})
	waitFor(t, "rtbh v6 at the peer", func() bool {
		r := p.routes(t, gbgp.RF_IPv6_UC)
		return len(r) == 1 && strings.Contains(r[0], "2001:db8:6401::10/128") && strings.Contains(r[0], "nh 100::1")
	})
	k2 := divert.Key{CUID: "beta", MID: 7}
	fs := divert.Diversion{Key: k2, Domain: "beta", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.130/32")},
		Ports: []dots.PortRange{{LowerPort: 443}}, Protocols: []uint8{6}}
	if a, err := b.Apply(context.Background(), fs); err != nil || a.Status != dots.StatusMitigated {
		t.Fatalf("apply flowspec: %v %+v", err, a)
	}
	waitFor(t, "flowspec at the peer", func() bool {
		r := p.routes(t, gbgp.RF_FS_IPv4_UC)
		return len(r) == 1 && strings.Contains(r[0], "203.0.113.130/32") && strings.Contains(r[0], "==443") && strings.Contains(r[0], "discard")
	})
	// The same target from a second mitigation shares the route; withdrawing one keeps it.
	k3 := divert.Key{CUID: "alpha", MID: 2}
	if _, err := b.Apply(context.Background(), divert.Diversion{Key: k3, Domain: "alpha", Prefixes: rtbh.Prefixes[:1]}); err != nil {
		t.Fatal(err)
	}
	if err := b.Withdraw(context.Background(), k1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "v6 withdrawn, v4 kept", func() bool {
		return len(p.routes(t, gbgp.RF_IPv6_UC)) == 0 && len(p.routes(t, gbgp.RF_IPv4_UC)) == 1
	})
	_ = b.Withdraw(context.Background(), k3)
	_ = b.Withdraw(context.Background(), k2)
	waitFor(t, "everything withdrawn", func() bool {
		return len(p.routes(t, gbgp.RF_IPv4_UC))+len(p.routes(t, gbgp.RF_FS_IPv4_UC)) == 0
	})
	_ = rec
}

func TestRefusals(t *testing.T) {
	p := startPeer(t, "127.0.0.22", all4...)
	b, _ := newSpeaker(t, baseConfig(p))
	for _, tc := range []struct {
		name string
		d    divert.Diversion
		want string
	}{
		{"shorter than /24", divert.Diversion{Domain: "alpha", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.112.0/23")}}, "shorter than /24"},
		{"shorter than /48", divert.Diversion{Domain: "alpha", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}}, "shorter than /48"},
		{"rtbh without rights", divert.Diversion{Domain: "beta", Countermeasure: "rtbh", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.130/32")}}, "may not request RTBH"},
		{"rtbh with ports", divert.Diversion{Domain: "alpha", Countermeasure: "rtbh", Ports: []dots.PortRange{{LowerPort: 80}}, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32")}}, "cannot be limited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.Check(tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want an error containing %q", err, tc.want)
			}
			if _, err := b.Apply(context.Background(), tc.d); err == nil {
				t.Fatal("Apply accepted what Check refused")
			}
		})
	}
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "neighbor up", func() bool { return b.Neighbors()[0].Established })
	time.Sleep(200 * time.Millisecond)
	for _, f := range all4 {
		if r := p.routes(t, f); len(r) != 0 {
			t.Fatalf("%s: routes reached the peer after refusals: %v", f, r)
		}
	}
}

func TestMissingFamilyIsReported(t *testing.T) {
	p := startPeer(t, "127.0.0.23", gbgp.RF_IPv4_UC, gbgp.RF_FS_IPv4_UC) // no IPv6
	b, rec := newSpeaker(t, baseConfig(p))
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "neighbor up", func() bool { return b.Neighbors()[0].Established })
	k := divert.Key{CUID: "alpha", MID: 3}
	a, err := b.Apply(context.Background(), divert.Diversion{Key: k, Domain: "alpha", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:6401::1/128")}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != dots.StatusInProgress || !strings.Contains(a.Detail, "did not negotiate ipv6-unicast") {
		t.Fatalf("a family the peer did not negotiate must not look mitigated: %+v", a)
	}
	_ = rec
}

func TestFlowSpecBudget(t *testing.T) {
	p := startPeer(t, "127.0.0.24", all4...)
	cfg := baseConfig(p)
	cfg.Neighbors[0].FlowSpecBudget = 2
	b, _ := newSpeaker(t, cfg)
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "neighbor up", func() bool { return b.Neighbors()[0].Established })
	d := divert.Diversion{Key: divert.Key{CUID: "beta", MID: 1}, Domain: "beta", Protocols: []uint8{17},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.130/32"), netip.MustParsePrefix("203.0.113.131/32")}}
	if a, _ := b.Apply(context.Background(), d); a.Status != dots.StatusMitigated {
		t.Fatalf("within budget: %+v", a)
	}
	d2 := divert.Diversion{Key: divert.Key{CUID: "beta", MID: 2}, Domain: "beta", Protocols: []uint8{17},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.132/32")}}
	a, _ := b.Apply(context.Background(), d2)
	if a.Status != dots.StatusExceededCapability || !strings.Contains(a.Detail, "budget") {
		t.Fatalf("over budget: %+v, want attack-exceeded-capability", a)
	}
	time.Sleep(200 * time.Millisecond)
	if r := p.routes(t, gbgp.RF_FS_IPv4_UC); len(r) != 2 {
		t.Fatalf("peer has %d rules, want the 2 within budget: %v", len(r), r)
	}
}

func TestDryRunAnnouncesNothing(t *testing.T) {
	p := startPeer(t, "127.0.0.25", all4...)
	cfg := baseConfig(p)
	cfg.DryRun = true
	b, _ := newSpeaker(t, cfg)
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "neighbor up", func() bool { return b.Neighbors()[0].Established })
	a, err := b.Apply(context.Background(), divert.Diversion{Key: divert.Key{CUID: "alpha", MID: 1}, Domain: "alpha",
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}})
	if err != nil || a.Status != dots.StatusInProgress || !strings.Contains(a.Detail, "dry-run") {
		t.Fatalf("dry-run apply: %v %+v", err, a)
	}
	time.Sleep(200 * time.Millisecond)
	if r := p.routes(t, gbgp.RF_IPv4_UC); len(r) != 0 {
		t.Fatalf("dry-run announced %v", r)
	}
}

func TestLongPortListIsSplit(t *testing.T) {
	var ports []dots.PortRange
	for i := 0; i < 120; i++ {
		ports = append(ports, dots.PortRange{LowerPort: uint16(1000 + 3*i)})
	}
	b := &Backend{cfg: baseConfig()}
	_ = b.cfg.Validate()
	pl := &plan{kind: KindFlowSpec}
	if err := b.flowRoutes(pl, KindFlowSpec, divert.Diversion{Domain: "beta", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.130/32")}, Ports: ports},
		flowspecDiscard()); err != nil {
		t.Fatal(err)
	}
	if len(pl.routes) < 2 {
		t.Fatalf("120 ports in %d rule(s): a long rule must be split", len(pl.routes))
	}
	seen := 0
	for _, r := range pl.routes {
		seen += strings.Count(r.text, "=")
	}
	if seen < 120 {
		t.Fatalf("the split rules match %d ports, want all 120", seen)
	}
}

func flowspecDiscard() flowspec.Action { return flowspec.Action{Kind: flowspec.Discard} }

func TestScrubbingOnRamp(t *testing.T) {
	for _, style := range []string{"next-hop", "flowspec-redirect"} {
		t.Run(style, func(t *testing.T) {
			addr := map[string]string{"next-hop": "127.0.0.27", "flowspec-redirect": "127.0.0.28"}[style]
			p := startPeer(t, addr, all4...)
			cfg := baseConfig(p)
			cfg.Scrubbing = Scrubbing{NextHopV4: "198.51.100.1", NextHopV6: "2001:db8:ffff::1", Style: style}
			cfg.Domains["gamma"] = DomainPolicy{Countermeasure: "scrubbing"}
			b, _ := newSpeaker(t, cfg)
			if err := b.Sync(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "neighbor up", func() bool { return b.Neighbors()[0].Established })
			d := divert.Diversion{Key: divert.Key{CUID: "gamma", MID: 1}, Domain: "gamma", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.50/32")}}
			if a, err := b.Apply(context.Background(), d); err != nil || a.Status != dots.StatusMitigated {
				t.Fatalf("apply: %v %+v", err, a)
			}
			if style == "next-hop" {
				waitFor(t, "on-ramp route", func() bool {
					r := p.routes(t, gbgp.RF_IPv4_UC)
					return len(r) == 1 && strings.Contains(r[0], "203.0.113.50/32") && strings.Contains(r[0], "nh 198.51.100.1") &&
						!strings.Contains(r[0], "blackhole")
				})
			} else {
				waitFor(t, "redirect rule", func() bool {
					r := p.routes(t, gbgp.RF_FS_IPv4_UC)
					return len(r) == 1 && strings.Contains(r[0], "203.0.113.50/32") && strings.Contains(r[0], "198.51.100.1")
				})
			}
			_ = b.Withdraw(context.Background(), d.Key)
			waitFor(t, "withdrawn", func() bool {
				return len(p.routes(t, gbgp.RF_IPv4_UC))+len(p.routes(t, gbgp.RF_FS_IPv4_UC)) == 0
			})
		})
	}
}

func TestPerNeighborPolicy(t *testing.T) {
	rtbhOnly := startPeer(t, "127.0.0.30", all4...)
	flowOnly := startPeer(t, "127.0.0.31", all4...)
	cfg := baseConfig(rtbhOnly, flowOnly)
	cfg.Neighbors[0].Receives = []string{KindRTBH}
	cfg.Neighbors[0].Communities = []string{"65000:100"}
	cfg.Neighbors[1].Receives = []string{KindFlowSpec}
	b, _ := newSpeaker(t, cfg)
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "neighbors up", func() bool { n := b.Neighbors(); return n[0].Established && n[1].Established })
	rtbh := divert.Diversion{Key: divert.Key{CUID: "alpha", MID: 1}, Domain: "alpha", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}
	flow := divert.Diversion{Key: divert.Key{CUID: "beta", MID: 1}, Domain: "beta", Protocols: []uint8{17}, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.130/32")}}
	for _, d := range []divert.Diversion{rtbh, flow} {
		a, err := b.Apply(context.Background(), d)
		if err != nil || a.Status != dots.StatusMitigated {
			t.Fatalf("apply %v: %v %+v", d.Key, err, a)
		}
		want := map[string]string{"alpha": "edge1", "beta": "edge2"}[d.Key.CUID]
		if !strings.Contains(a.Detail, "-> "+want) || strings.Contains(a.Detail, map[string]string{"alpha": "edge2", "beta": "edge1"}[d.Key.CUID]) {
			t.Fatalf("detail %q: want only %s named", a.Detail, want)
		}
	}
	waitFor(t, "rtbh only at edge1, with its community", func() bool {
		r := rtbhOnly.routes(t, gbgp.RF_IPv4_UC)
		return len(r) == 1 && strings.Contains(r[0], "65000:100") && len(rtbhOnly.routes(t, gbgp.RF_FS_IPv4_UC)) == 0
	})
	waitFor(t, "flowspec only at edge2", func() bool {
		return len(flowOnly.routes(t, gbgp.RF_FS_IPv4_UC)) == 1 && len(flowOnly.routes(t, gbgp.RF_IPv4_UC)) == 0
	})
}

// TestTCPMD5: with the same password on both sides the session comes up
// (RFC 2385, kernel TCP-MD5); with a wrong one it does not.
func TestTCPMD5(t *testing.T) {
	for _, tc := range []struct {
		name, ours string
		up         bool
	}{{"same password", "levee-md5", true}, {"wrong password", "wrong", false}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := map[bool]string{true: "127.0.0.32", false: "127.0.0.33"}[tc.up]
			p := startPeerMD5(t, addr, "levee-md5", all4...)
			cfg := baseConfig(p)
			cfg.Neighbors[0].Password = tc.ours
			b, _ := newSpeaker(t, cfg)
			if err := b.Sync(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) && !b.Neighbors()[0].Established {
				time.Sleep(50 * time.Millisecond)
			}
			if got := b.Neighbors()[0].Established; got != tc.up {
				t.Fatalf("established = %v, want %v", got, tc.up)
			}
		})
	}
}

// TestStatusNamesLackingNeighbors: when one neighbor carries a route, the
// status is mitigated as before, and the detail also names each neighbor
// that should carry it but is down or did not negotiate the family.
func TestStatusNamesLackingNeighbors(t *testing.T) {
	up := startPeer(t, "127.0.0.34", all4...)
	v4only := startPeer(t, "127.0.0.35", gbgp.RF_IPv4_UC, gbgp.RF_FS_IPv4_UC)
	cfg := baseConfig(up, v4only)
	// edge3 never comes up: nothing listens there.
	cfg.Neighbors = append(cfg.Neighbors, Neighbor{Name: "edge3", Address: "127.0.0.36", Port: uint32(freePort(t, "127.0.0.36")),
		PeerAS: 65000, LocalAddress: "127.0.0.1"})
	// edge4 takes only FlowSpec: it is not expected to carry RTBH.
	cfg.Neighbors = append(cfg.Neighbors, Neighbor{Name: "edge4", Address: "127.0.0.37", Port: uint32(freePort(t, "127.0.0.37")),
		PeerAS: 65000, LocalAddress: "127.0.0.1", Receives: []string{KindFlowSpec}})
	b, rec := newSpeaker(t, cfg)
	if err := b.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edge1 and edge2 up", func() bool { n := b.Neighbors(); return n[0].Established && n[1].Established })
	k := divert.Key{CUID: "alpha", MID: 1}
	a, err := b.Apply(context.Background(), divert.Diversion{Key: k, Domain: "alpha",
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("2001:db8:6401::10/128")}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != dots.StatusMitigated {
		t.Fatalf("status %v, want mitigated: edge1 carries every route (%q)", a.Status, a.Detail)
	}
	for _, want := range []string{
		"rtbh 203.0.113.10/32 via 192.0.2.1 -> edge1, edge2; not at edge3 (not established)",
		"rtbh 2001:db8:6401::10/128 via 100::1 -> edge1; not at edge2 (did not negotiate ipv6-unicast), edge3 (not established)",
	} {
		if !strings.Contains(a.Detail, want) {
			t.Errorf("detail %q\nwant it to contain %q", a.Detail, want)
		}
	}
	if strings.Contains(a.Detail, "edge4") {
		t.Errorf("detail %q names edge4, which does not receive rtbh", a.Detail)
	}
	// edge1 going down leaves IPv6 with no neighbor: in progress, by name.
	_ = up.s.StopBgp(context.Background(), &api.StopBgpRequest{})
	waitFor(t, "status update after edge1 went down", func() bool { return rec.status(k) == dots.StatusInProgress })
	rec.mu.Lock()
	detail := rec.got[k].Detail
	rec.mu.Unlock()
	if !strings.Contains(detail, "no neighbor can take ipv6-unicast (edge1 is not established, edge2 did not negotiate ipv6-unicast, edge3 is not established)") ||
		!strings.Contains(detail, "-> edge2; not at edge1 (not established), edge3 (not established)") {
		t.Fatalf("detail after edge1 went down: %q", detail)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCloseLogsNoError: a clean stop, with or without graceful restart,
// logs nothing at ERROR, GoBGP's own lines included.
func TestCloseLogsNoError(t *testing.T) {
	for _, gr := range []bool{false, true} {
		t.Run(fmt.Sprintf("graceful-restart=%v", gr), func(t *testing.T) {
			p := startPeer(t, map[bool]string{false: "127.0.0.38", true: "127.0.0.39"}[gr], all4...)
			cfg := baseConfig(p)
			cfg.GracefulRestart.Enabled = gr
			var logs syncBuffer
			b, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Sync(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "neighbor up", func() bool { return b.Neighbors()[0].Established })
			if _, err := b.Apply(context.Background(), divert.Diversion{Key: divert.Key{CUID: "alpha", MID: 1}, Domain: "alpha",
				Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "level=ERROR") {
					t.Errorf("logged at ERROR by Close: %s", line)
				}
			}
		})
	}
}
