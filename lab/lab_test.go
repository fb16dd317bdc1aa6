package lab_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/levee-dots/levee/lab"
)

const speakerAS = 65001

// speaker is an embedded GoBGP v4 that dials out to the test peers.
type speaker struct{ s *server.BgpServer }

func startSpeaker(t *testing.T) *speaker {
	t.Helper()
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelError)
	s := server.NewBgpServer(server.LoggerOption(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})), lv))
	go s.Serve()
	err := s.StartBgp(t.Context(), &api.StartBgpRequest{Global: &api.Global{
		Asn: speakerAS, RouterId: "192.0.2.254", ListenPort: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A Cease to each peer; an error means it was stopped already.
		_ = s.StopBgp(context.Background(), &api.StopBgpRequest{})
	})
	return &speaker{s: s}
}

// addPeer configures a session to p for all four families, with graceful
// restart if gr is set.
func (sp *speaker) addPeer(t *testing.T, p lab.Peer, gr bool) {
	t.Helper()
	fam := func(f bgp.Family) *api.AfiSafi {
		a := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiutil.ToApiFamily(f.Afi(), f.Safi()), Enabled: true}}
		if gr {
			a.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		return a
	}
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: p.Addr().Addr().String(), PeerAsn: p.AS()},
		Transport: &api.Transport{LocalAddress: "127.0.0.1", RemotePort: uint32(p.Addr().Port())},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 30, KeepaliveInterval: 10}},
		AfiSafis:  []*api.AfiSafi{fam(bgp.RF_IPv4_UC), fam(bgp.RF_IPv6_UC), fam(bgp.RF_FS_IPv4_UC), fam(bgp.RF_FS_IPv6_UC)},
	}
	if gr {
		peer.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
	}
	if err := sp.s.AddPeer(t.Context(), &api.AddPeerRequest{Peer: peer}); err != nil {
		t.Fatal(err)
	}
}

func rtbhPath(t *testing.T, prefix, nexthop string) *apiutil.Path {
	t.Helper()
	pfx, nh := netip.MustParsePrefix(prefix), netip.MustParseAddr(nexthop)
	nlri, err := bgp.NewIPAddrPrefix(pfx)
	if err != nil {
		t.Fatal(err)
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeCommunities([]uint32{uint32(bgp.COMMUNITY_BLACKHOLE), uint32(bgp.COMMUNITY_NO_EXPORT)}),
	}
	fam := bgp.RF_IPv4_UC
	var a bgp.PathAttributeInterface
	if pfx.Addr().Is4() {
		a, err = bgp.NewPathAttributeNextHop(nh)
	} else {
		fam = bgp.RF_IPv6_UC
		a, err = bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, nh)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: append(attrs, a)}
}

func flowPath(t *testing.T, fam bgp.Family, rules []bgp.FlowSpecComponentInterface, ecs ...bgp.ExtendedCommunityInterface) *apiutil.Path {
	t.Helper()
	nlri, err := bgp.NewFlowSpecUnicast(fam, rules)
	if err != nil {
		t.Fatal(err)
	}
	mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}})
	if err != nil {
		t.Fatal(err)
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0), mp, bgp.NewPathAttributeExtendedCommunities(ecs)}}
}

func comp(typ bgp.BGPFlowSpecType, items ...*bgp.FlowSpecComponentItem) bgp.FlowSpecComponentInterface {
	return bgp.NewFlowSpecComponent(typ, items)
}

func prefix(t *testing.T, s string) *bgp.IPAddrPrefix {
	t.Helper()
	p, err := bgp.NewIPAddrPrefix(netip.MustParsePrefix(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testPaths returns the announced paths and the routes a peer should show.
func testPaths(t *testing.T) ([]*apiutil.Path, []lab.Route) {
	const (
		eq, ge, le, and = bgp.DEC_NUM_OP_EQ, bgp.DEC_NUM_OP_GT_EQ, bgp.DEC_NUM_OP_LT_EQ, bgp.DEC_NUM_OP_AND
		match, not      = bgp.BITMASK_FLAG_OP_MATCH, bgp.BITMASK_FLAG_OP_NOT
	)
	it := bgp.NewFlowSpecComponentItem
	redirectIP, err := bgp.NewIPv4AddressSpecificExtended(0x0c, netip.MustParseAddr("192.0.2.50"), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	rtbh := []string{"65535:666", "65535:65281"}
	paths := []*apiutil.Path{
		rtbhPath(t, "203.0.113.10/32", "192.0.2.1"),
		rtbhPath(t, "2001:db8::10/128", "100::1"),
		flowPath(t, bgp.RF_FS_IPv4_UC, []bgp.FlowSpecComponentInterface{
			bgp.NewFlowSpecDestinationPrefix(prefix(t, "203.0.113.10/32")),
			comp(bgp.FLOW_SPEC_TYPE_IP_PROTO, it(eq, 6)),
			comp(bgp.FLOW_SPEC_TYPE_DST_PORT, it(eq, 80), it(eq, 443)),
		}, bgp.NewTrafficRateExtended(0, 0)),
		flowPath(t, bgp.RF_FS_IPv6_UC, []bgp.FlowSpecComponentInterface{
			bgp.NewFlowSpecDestinationPrefix6(prefix(t, "2001:db8::10/128"), 0),
			bgp.NewFlowSpecSourcePrefix6(prefix(t, "2001:db8:bad::/48"), 0),
			comp(bgp.FLOW_SPEC_TYPE_IP_PROTO, it(eq, 17)),
			comp(bgp.FLOW_SPEC_TYPE_SRC_PORT, it(eq, 53), it(eq, 123)),
		}, bgp.NewTrafficRateExtended(65001, 125000)),
		// More components and actions, to check the normalisation.
		flowPath(t, bgp.RF_FS_IPv4_UC, []bgp.FlowSpecComponentInterface{
			bgp.NewFlowSpecDestinationPrefix(prefix(t, "203.0.113.20/32")),
			bgp.NewFlowSpecSourcePrefix(prefix(t, "198.51.100.0/24")),
			comp(bgp.FLOW_SPEC_TYPE_IP_PROTO, it(eq, 6)),
			comp(bgp.FLOW_SPEC_TYPE_DST_PORT, it(eq, 80), it(eq, 443), it(ge, 8000), it(and|le, 8080)),
			comp(bgp.FLOW_SPEC_TYPE_TCP_FLAG, it(match, bgp.TCP_FLAG_SYN), it(and|not, bgp.TCP_FLAG_ACK)),
			comp(bgp.FLOW_SPEC_TYPE_PKT_LEN, it(ge, 512), it(and|le, 65535)),
			comp(bgp.FLOW_SPEC_TYPE_DSCP, it(eq, 46)),
			comp(bgp.FLOW_SPEC_TYPE_FRAGMENT, it(match, bgp.FRAG_FLAG_IS)),
		}, bgp.NewTrafficRateExtended(65001, 1000000), bgp.NewTrafficRemarkExtended(8),
			bgp.NewRedirectTwoOctetAsSpecificExtended(65000, 666)),
		flowPath(t, bgp.RF_FS_IPv4_UC, []bgp.FlowSpecComponentInterface{
			bgp.NewFlowSpecDestinationPrefix(prefix(t, "203.0.113.21/32")),
			comp(bgp.FLOW_SPEC_TYPE_IP_PROTO, it(eq, 1)),
			comp(bgp.FLOW_SPEC_TYPE_ICMP_TYPE, it(eq, 8)),
			comp(bgp.FLOW_SPEC_TYPE_ICMP_CODE, it(eq, 0)),
		}, redirectIP),
	}
	want := []lab.Route{
		{Family: lab.IPv4Unicast, Prefix: "203.0.113.10/32", NextHop: "192.0.2.1", Communities: rtbh},
		{Family: lab.IPv6Unicast, Prefix: "2001:db8::10/128", NextHop: "100::1", Communities: rtbh},
		{Family: lab.IPv4FlowSpec, Actions: []string{"discard"}, FlowSpec: map[string]string{
			"destination": "203.0.113.10/32", "protocol": "=6", "destination-port": "=80 =443"}},
		{Family: lab.IPv6FlowSpec, Actions: []string{"rate-limit 125000"}, FlowSpec: map[string]string{
			"destination": "2001:db8::10/128", "source": "2001:db8:bad::/48", "protocol": "=17",
			"source-port": "=53 =123"}},
		{Family: lab.IPv4FlowSpec, Actions: []string{"mark 8", "rate-limit 1000000", "redirect 65000:666"},
			FlowSpec: map[string]string{"destination": "203.0.113.20/32", "source": "198.51.100.0/24",
				"protocol": "=6", "destination-port": "=80 =443 >=8000&<=8080", "tcp-flags": "=2&!16",
				"packet-length": ">=512&<=65535", "dscp": "=46", "fragment": "=2"}},
		{Family: lab.IPv4FlowSpec, Actions: []string{"redirect-ip 192.0.2.50"}, FlowSpec: map[string]string{
			"destination": "203.0.113.21/32", "protocol": "=1", "icmp-type": "=8", "icmp-code": "=0"}},
	}
	return paths, want
}

// reader adapts the three peers' readers to one shape.
type reader struct {
	peer        lab.Peer
	routes      func(context.Context) ([]lab.Route, error)
	established func(context.Context) (bool, error)
	families    []string
}

func only(rs []lab.Route, families []string) []lab.Route {
	var out []lab.Route
	for _, r := range rs {
		for _, f := range families {
			if r.Family == f {
				out = append(out, r)
			}
		}
	}
	return out
}

func addr(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// TestPeers announces RTBH and FlowSpec routes from an embedded GoBGP to
// FRR, BIRD and ExaBGP (once with all families, once with IPv4 only),
// checks what each received, withdraws them and checks they are gone.
func TestPeers(t *testing.T) {
	start := time.Now()
	v4 := []string{lab.IPv4Unicast, lab.IPv4FlowSpec}
	frr := lab.StartFRR(t, lab.Options{Addr: addr("127.0.0.2:0"), SpeakerAS: speakerAS})
	bird := lab.StartBIRD(t, lab.Options{Addr: addr("127.0.0.3:0"), SpeakerAS: speakerAS})
	exa := lab.StartExaBGP(t, lab.Options{Addr: addr("127.0.0.4:0"), SpeakerAS: speakerAS})
	frr4 := lab.StartFRR(t, lab.Options{Addr: addr("127.0.0.5:0"), SpeakerAS: speakerAS, Families: v4})
	bird4 := lab.StartBIRD(t, lab.Options{Addr: addr("127.0.0.6:0"), SpeakerAS: speakerAS, Families: v4})
	exa4 := lab.StartExaBGP(t, lab.Options{Addr: addr("127.0.0.7:0"), SpeakerAS: speakerAS, Families: v4})
	t.Logf("peers started in %v: frr %v, bird %v, exabgp %v", time.Since(start).Round(time.Millisecond),
		frr.Addr(), bird.Addr(), exa.Addr())

	exaRoutes := func(e *lab.ExaBGP) func(context.Context) ([]lab.Route, error) {
		return func(context.Context) ([]lab.Route, error) { return e.Routes(), nil }
	}
	exaUp := func(e *lab.ExaBGP) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) { return e.Established(), nil }
	}
	readers := []reader{
		{frr, frr.Routes, frr.Established, lab.AllFamilies},
		{bird, bird.Routes, bird.Established, lab.AllFamilies},
		{exa, exaRoutes(exa), exaUp(exa), lab.AllFamilies},
		{frr4, frr4.Routes, frr4.Established, v4},
		{bird4, bird4.Routes, bird4.Established, v4},
		{exa4, exaRoutes(exa4), exaUp(exa4), v4},
	}

	sp := startSpeaker(t)
	for _, r := range readers {
		sp.addPeer(t, r.peer, false)
	}
	ctx := t.Context()
	for _, r := range readers {
		err := lab.WaitFor(ctx, 15*time.Second, func() (bool, string) {
			up, err := r.established(ctx)
			return up && err == nil, fmt.Sprintf("%s established=%v err=%v", r.peer.Name(), up, err)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("sessions up after %v", time.Since(start).Round(time.Millisecond))

	paths, want := testPaths(t)
	for _, p := range paths {
		if _, err := sp.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
			t.Fatalf("AddPath: %v", err)
		}
	}
	expect := func(stage string, want func(reader) []lab.Route) {
		t.Helper()
		for _, r := range readers {
			w := want(r)
			err := lab.WaitFor(ctx, 10*time.Second, func() (bool, string) {
				got, err := r.routes(ctx)
				if err != nil {
					return false, err.Error()
				}
				diff := lab.Diff(w, got)
				return diff == "", fmt.Sprintf("%s on %v:\n%s\ndiff (-want +got):\n%s", r.peer.Name(), r.peer.Addr(),
					lab.FormatRoutes(got), diff)
			})
			if err != nil {
				t.Errorf("%s: %v", stage, err)
			}
		}
	}
	expect("announce", func(r reader) []lab.Route { return only(want, r.families) })
	t.Logf("routes seen after %v", time.Since(start).Round(time.Millisecond))
	if n := exa.Updates(); n < len(want) {
		t.Errorf("exabgp saw %d updates, want at least %d", n, len(want))
	}

	if err := sp.s.DeletePath(apiutil.DeletePathRequest{Paths: paths}); err != nil {
		t.Fatalf("DeletePath: %v", err)
	}
	expect("withdraw", func(reader) []lab.Route { return nil })
	t.Logf("withdrawals seen after %v", time.Since(start).Round(time.Millisecond))
	if errs := exa.Errors(); len(errs) > 0 {
		t.Errorf("exabgp messages not understood: %v", errs)
	}

	// Close stops every process and is idempotent.
	for _, r := range readers {
		dir := r.peer.(interface{ Dir() string }).Dir()
		for i := 0; i < 2; i++ {
			if err := r.peer.Close(); err != nil {
				t.Errorf("%s Close #%d: %v", r.peer.Name(), i+1, err)
			}
		}
		if pids := processesUsing(dir); len(pids) > 0 {
			t.Errorf("%s: processes left after Close: %v", r.peer.Name(), pids)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: %s not removed: %v", r.peer.Name(), dir, err)
		}
	}
	if exa.Established() {
		t.Error("exabgp still established after Close")
	}
}

// processesUsing lists processes whose command line mentions dir.
func processesUsing(dir string) []string {
	var out []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), dir) {
			out = append(out, strings.TrimPrefix(filepath.Dir(f), "/proc/")+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// TestFRRStale checks that FRR.Routes reports routes kept stale by graceful
// restart after the speaker stops.
func TestFRRStale(t *testing.T) {
	frr := lab.StartFRR(t, lab.Options{Addr: addr("127.0.0.8:0"), SpeakerAS: speakerAS})
	sp := startSpeaker(t)
	sp.addPeer(t, frr, true)
	ctx := t.Context()
	paths, want := testPaths(t)
	if _, err := sp.s.AddPath(apiutil.AddPathRequest{Paths: paths[:1]}); err != nil {
		t.Fatal(err)
	}
	wait := func(want []lab.Route) {
		t.Helper()
		err := lab.WaitFor(ctx, 15*time.Second, func() (bool, string) {
			got, err := frr.Routes(ctx)
			if err != nil {
				return false, err.Error()
			}
			return lab.Diff(want, got) == "", lab.FormatRoutes(got)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wait(want[:1])
	if err := sp.s.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
		t.Fatal(err)
	}
	stale := want[0]
	stale.Stale = true
	wait([]lab.Route{stale})
	if up, err := frr.Established(ctx); up || err != nil {
		t.Errorf("Established after the speaker stopped = %v, %v; want false, nil", up, err)
	}
}

// fatalTB records a Fatal or Skip and ends its goroutine, so that a test can
// check that a Start function gives up cleanly.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.stop(fmt.Sprintf(format, args...)) }
func (f *fatalTB) Fatal(args ...any)                 { f.stop(fmt.Sprint(args...)) }
func (f *fatalTB) Skipf(format string, args ...any)  { f.stop("skip: " + fmt.Sprintf(format, args...)) }
func (f *fatalTB) Skip(args ...any)                  { f.stop("skip: " + fmt.Sprint(args...)) }
func (f *fatalTB) stop(msg string)                   { f.msg = msg; runtime.Goexit() }

// TestAddressInUse checks that a peer asked for a taken address fails with
// a clear message.
func TestAddressInUse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB, lab.Options) lab.Peer
	}{
		{"frr", func(tb testing.TB, o lab.Options) lab.Peer { return lab.StartFRR(tb, o) }},
		{"bird", func(tb testing.TB, o lab.Options) lab.Peer { return lab.StartBIRD(tb, o) }},
		{"exabgp", func(tb testing.TB, o lab.Options) lab.Peer { return lab.StartExaBGP(tb, o) }},
	} {
		l, err := net.Listen("tcp", "127.0.0.9:0")
		if err != nil {
			t.Fatal(err)
		}
		f := &fatalTB{TB: t}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc.start(f, lab.Options{Addr: netip.MustParseAddrPort(l.Addr().String())})
		}()
		wg.Wait()
		l.Close()
		switch {
		case strings.HasPrefix(f.msg, "skip: "):
			t.Log(f.msg)
		case !strings.Contains(f.msg, "address in use") || !strings.Contains(f.msg, l.Addr().String()):
			t.Errorf("%s: start on a taken address: %q", tc.name, f.msg)
		}
	}
}
