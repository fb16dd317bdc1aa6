//go:build linux

package dashboard_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/levee-dots/levee/dashboard"
	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

// screenshotPath is where the run's screenshot goes: $LEVEE_TEST_ARTIFACTS
// when set, else the test's temporary directory. Its counters are fed by
// the test, so it is never the README's picture (that one is of the
// scrubbing lab: dotslab screenshot).
func screenshotPath(t *testing.T) string {
	if dir := os.Getenv("LEVEE_TEST_ARTIFACTS"); dir != "" {
		return filepath.Join(dir, "dashboard-mitigation.png")
	}
	return filepath.Join(t.TempDir(), "dashboard-mitigation.png")
}

// artifact keeps a screenshot of the page as it is in
// $LEVEE_TEST_ARTIFACTS, when set.
func artifact(t *testing.T, b *browser, name string) {
	if dir := os.Getenv("LEVEE_TEST_ARTIFACTS"); dir != "" {
		b.screenshot(filepath.Join(dir, "dashboard-"+name+".png"))
	}
}

// edgeRouter is an in-process GoBGP acting as an edge router (passive, AS
// 65000), as in divert/bgp's tests.
func edgeRouter(t *testing.T, addr string) int {
	t.Helper()
	port := freePort(t, addr)
	s := server.NewBgpServer()
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: addr,
		ListenPort: int32(port), ListenAddresses: []string{addr}}}); err != nil {
		t.Fatal(err)
	}
	var afs []*api.AfiSafi
	for _, f := range []gbgp.Family{gbgp.RF_IPv4_UC, gbgp.RF_IPv6_UC, gbgp.RF_FS_IPv4_UC, gbgp.RF_FS_IPv6_UC} {
		afs = append(afs, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiutil.ToApiFamily(f.Afi(), f.Safi()), Enabled: true}})
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{Conf: &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65001},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: addr}, AfiSafis: afs}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.StopBgp(context.Background(), &api.StopBgpRequest{}); s.Stop() })
	return port
}

func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// liveServer is a mitigation service diverting through the embedded BGP
// speaker (one edge router up, one down) and the dashboard over it.
type liveServer struct {
	svc     *service.Service
	speaker *bgp.Backend
	tick    chan time.Time
	clk     *skewClock
	base    string
	dash    *dashboard.Dashboard
	srv     *dashboard.Server
}

// skewClock is the dashboard's clock: real time shifted by skew.
type skewClock struct {
	mu   sync.Mutex
	skew time.Duration
}

func (c *skewClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.skew) }
func (c *skewClock) set(d time.Duration) {
	c.mu.Lock()
	c.skew = d
	c.mu.Unlock()
}

func startLive(t *testing.T) *liveServer {
	t.Helper()
	up := edgeRouter(t, "127.0.0.61")
	families := []string{"ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"}
	cfg := bgp.Config{LocalAS: 65001, RouterID: "192.0.2.254", Domains: map[string]bgp.DomainPolicy{"alpha": {RTBH: true, Countermeasure: "rtbh"}},
		Neighbors: []bgp.Neighbor{
			{Name: "edge1", Address: "127.0.0.61", Port: uint32(up), PeerAS: 65000, LocalAddress: "127.0.0.1", Families: families},
			{Name: "edge2", Address: "127.0.0.62", Port: uint32(freePort(t, "127.0.0.62")), PeerAS: 65000, LocalAddress: "127.0.0.1", Families: families},
		}}
	var svc *service.Service
	var svcMu sync.Mutex
	speaker, err := bgp.New(context.Background(), cfg, nil, func(backend string, k divert.Key, a divert.Applied) {
		svcMu.Lock()
		s := svc
		svcMu.Unlock()
		if s != nil {
			s.DiversionUpdate(backend, k, a)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { speaker.Close() })
	s, err := service.New(service.Options{Store: store.NewMemory(), Backends: []divert.Diverter{speaker}})
	if err != nil {
		t.Fatal(err)
	}
	svcMu.Lock()
	svc = s
	svcMu.Unlock()
	s.Start()
	t.Cleanup(s.Close)
	l := &liveServer{svc: s, speaker: speaker, tick: make(chan time.Time), clk: &skewClock{}}
	tok, err := dashboard.LoadToken(writeToken(t))
	if err != nil {
		t.Fatal(err)
	}
	l.dash, err = dashboard.New(dashboard.Options{Service: s, Neighbors: speaker, Backends: []string{speaker.Name()},
		Token: tok, Now: l.clk.Now, Tick: l.tick})
	if err != nil {
		t.Fatal(err)
	}
	if l.srv, err = dashboard.Serve("127.0.0.1:0", l.dash, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.dash.Close(); l.srv.Close() })
	l.base = "http://" + l.srv.Addr().String()
	return l
}

// relisten closes the dashboard's listener and connections, runs
// meanwhile, and listens on the same address again.
func (l *liveServer) relisten(t *testing.T, meanwhile func()) {
	t.Helper()
	addr := l.srv.Addr().String()
	l.srv.Close()
	meanwhile()
	srv, err := dashboard.Serve(addr, l.dash, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.srv = srv
}

// attack is what a scrubber would report i samples (5 s each) into the
// attack: a drop rate ramping to about 2 Gbit/s with a slow swell, and the
// totals dropped so far.
func attack(i int) divert.Counters {
	const size = 1250 // bytes per packet
	var c divert.Counters
	for j := 0; j <= i; j++ {
		bps := math.Min(1, float64(j)/30) * (1.6e9 + 4e8*math.Sin(float64(j)/11))
		c.BPSDropped, c.PPSDropped = uint64(bps), uint64(bps/8/size)
		c.BytesDropped += uint64(5 * bps / 8)
		c.PktsDropped += uint64(5 * bps / 8 / size)
	}
	return c
}

// measure feeds mid's counters to the service as the scrubbing backend
// does, then has the dashboard sample them. The history of the plots'
// window is built first, with the dashboard's clock going through the
// last 15 minutes 5 s a sample; then one sample every 200 ms, in real
// time, until the test ends.
func (l *liveServer) measure(t *testing.T, mid uint32) {
	k := divert.Key{CUID: alpha.CUID, MID: mid}
	const history = 170
	i := 0
	for ; i < history; i++ {
		l.clk.set(-time.Duration(history-i) * 5 * time.Second)
		l.svc.Measured("scrub", k, attack(i))
		l.tick <- l.clk.Now()
	}
	l.clk.set(0)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for ; ; i++ {
			select {
			case <-stop:
				return
			case now := <-tk.C:
				l.svc.Measured("scrub", k, attack(i))
				select {
				case l.tick <- now:
				case <-stop:
					return
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// TestBrowser loads every page in headless Chromium against a service
// with live mitigations diverted by the BGP speaker and measured counters,
// and checks what the pages' scripts rendered.
func TestBrowser(t *testing.T) {
	b := startBrowser(t)
	l := startLive(t)
	put(t, l.svc, 1, "203.0.113.10/32")
	put(t, l.svc, 2, "203.0.113.20/32")
	waitFor(t, "mid 1 diverted through edge1", func() bool {
		for _, r := range l.svc.AllMitigations() {
			if r.MID == 1 && r.Status == 2 {
				return true
			}
		}
		return false
	})
	l.measure(t, 1)

	b.call("Page.navigate", map[string]any{"url": l.base + "/mitigations"})
	b.waitJS("the login form", `document.getElementById('token') !== null`)
	b.eval(fmt.Sprintf(`document.getElementById('token').value = %q; document.querySelector('form').submit(); true`, testToken), nil)
	b.waitJS("the overview after login", `location.pathname === '/' && document.body.dataset.ready === 'true'`)

	t.Run("overview", func(t *testing.T) {
		b.navigate(l.base + "/")
		if got := b.text("#active .big"); got != "2" {
			t.Errorf("active mitigations %q, want 2", got)
		}
		if got := b.text("#active .bystatus"); !strings.Contains(got, "attack-successfully-mitigated") {
			t.Errorf("by status %q", got)
		}
		if got := b.text("#bgp .big"); got != "1 / 2" {
			t.Errorf("bgp neighbors established %q, want 1 / 2", got)
		}
		artifact(t, b, "overview")
	})
	t.Run("mitigation list, live", func(t *testing.T) {
		b.navigate(l.base + "/mitigations")
		row := func(mid int, sel string) string { return b.text(fmt.Sprintf(`tr[data-mid="%d"] %s`, mid, sel)) }
		if got := row(1, ".status"); got != "2 attack-successfully-mitigated" {
			t.Errorf("mid 1 status %q", got)
		}
		if got := row(1, ".bps"); !strings.HasSuffix(got, "bit/s") {
			t.Errorf("mid 1 drop rate %q, want a number of bit/s", got)
		}
		rate := row(1, ".bps")
		b.waitJS("mid 1's drop rate changed by a live sample", fmt.Sprintf(`document.querySelector('tr[data-mid="1"] .bps').textContent !== %q`, rate))
		if got := row(2, ".bps"); got != "not measured" {
			t.Errorf("mid 2 drop rate %q, want not measured", got)
		}
		if got := row(3, ".mid"); got != "" {
			t.Fatalf("mid 3 listed before it was requested: %q", got)
		}
		put(t, l.svc, 3, "203.0.113.30/32")
		b.waitJS("mid 3 added by the live stream", `document.querySelector('tr[data-mid="3"]') !== null`)
		if got := row(3, ".targets"); !strings.Contains(got, "203.0.113.30/32") {
			t.Errorf("mid 3 targets %q", got)
		}
		b.waitJS("mid 3 diverted, by the live stream", `document.querySelector('tr[data-mid="3"][data-status="2"]') !== null`)
		artifact(t, b, "mitigations")
	})
	t.Run("mitigation detail", func(t *testing.T) {
		b.navigate(l.base + "/mitigation?cuid=" + alpha.CUID + "&mid=1")
		if got := b.text("#mid"); got != "1" {
			t.Errorf("mid %q", got)
		}
		if got := b.text("#info .status"); got != "2 attack-successfully-mitigated" {
			t.Errorf("status %q", got)
		}
		for _, id := range []string{"plot-bps", "plot-pps"} {
			var n int
			b.eval(fmt.Sprintf(`document.querySelector('#%s path.line').getAttribute('d').split(/[ML]/).filter(s => s.trim() !== '').length`, id), &n)
			if n < 100 {
				t.Errorf("%s: %d points, want the history of about 170 samples", id, n)
			}
		}
		var before int
		b.eval(`+document.querySelector('#plot-bps path.line').dataset.points`, &before)
		b.waitJS("a live sample added to the plot", fmt.Sprintf(`+document.querySelector('#plot-bps path.line').dataset.points > %d`, before))
		if got := b.text(`#outcome tr[data-backend="bgp"]`); !strings.Contains(got, "203.0.113.10/32") || !strings.Contains(got, "-> edge1") || !strings.Contains(got, "edge2 (not established)") {
			t.Errorf("bgp outcome %q", got)
		}
		path := screenshotPath(t)
		b.screenshot(path)
		t.Logf("screenshot of the mitigation detail page: %s", path)

		b.navigate(l.base + "/mitigation?cuid=" + alpha.CUID + "&mid=2")
		if got := b.text("#plots"); !strings.HasPrefix(got, "not measured") {
			t.Errorf("mid 2 plots %q, want not measured", got)
		}
		if n := b.text("#plot-bps"); n != "" {
			t.Errorf("mid 2, measured by nothing, has a plot")
		}
		artifact(t, b, "mitigation-unmeasured")
	})
	t.Run("bgp neighbors", func(t *testing.T) {
		b.navigate(l.base + "/bgp")
		for _, n := range l.speaker.Neighbors() {
			state := map[bool]string{true: "established", false: "down"}[n.Established]
			if got := b.text(fmt.Sprintf(`tr[data-neighbor="%s"] .state`, n.Name)); got != state {
				t.Errorf("%s state %q, want %q", n.Name, got, state)
			}
			if got := b.text(fmt.Sprintf(`tr[data-neighbor="%s"] .routes`, n.Name)); !strings.HasPrefix(got, fmt.Sprint(n.Routes, " route")) {
				t.Errorf("%s routes %q, want %d", n.Name, got, n.Routes)
			}
		}
		for _, mid := range []int{1, 2, 3} {
			want := fmt.Sprintf("mid %d flowspec {dst 203.0.113.%d0/32 proto =6 dport =443} discard", mid, mid)
			if got := b.text(fmt.Sprintf(`tr[data-neighbor="edge1"] .announced [data-mid="%d"]`, mid)); got != want {
				t.Errorf("edge1's routes for mid %d: %q, want %q", mid, got, want)
			}
		}
		if got := b.text(`tr[data-neighbor="edge2"] .announced`); got != "none" {
			t.Errorf("edge2, down, has routes %q", got)
		}
		if got := b.text(`tr[data-neighbor="edge1"] .routes`); got != "3 routes" {
			t.Errorf("edge1 routes %q, want the 3 mitigations' FlowSpec rules", got)
		}
		artifact(t, b, "bgp")
	})
	t.Run("event log", func(t *testing.T) {
		b.navigate(l.base + "/events")
		for _, mid := range []int{1, 2, 3} {
			if b.text(fmt.Sprintf(`#event-rows tr[data-mid="%d"]`, mid)) == "" {
				t.Errorf("no event of mid %d", mid)
			}
		}
		put(t, l.svc, 4, "203.0.113.40/32")
		b.waitJS("mid 4's event added by the live stream", `document.querySelector('#event-rows tr[data-mid="4"]') !== null`)
		artifact(t, b, "events")
	})
	t.Run("mitigation withdrawn, live", func(t *testing.T) {
		b.navigate(l.base + "/mitigation?cuid=" + alpha.CUID + "&mid=3")
		if got := b.text("#info .status"); got != "2 attack-successfully-mitigated" {
			t.Fatalf("mid 3 status %q before the withdrawal", got)
		}
		if err := l.svc.WithdrawMitigation(alpha, 3); err != nil {
			t.Fatal(err)
		}
		b.waitJS("mid 3's withdrawal shown by the live stream", `document.querySelector('#info .status').textContent === '5 dots-client-withdrawn-mitigation'`)
	})
	t.Run("live stream lost", func(t *testing.T) {
		b.navigate(l.base + "/mitigations")
		l.relisten(t, func() {
			b.waitJS("the page to see the stream lost", `document.querySelector('#live.off') !== null`)
			put(t, l.svc, 5, "203.0.113.50/32") // streamed to no one
		})
		b.waitJS("mid 5 listed once the stream is back", `document.querySelector('#live.on') !== null && document.querySelector('tr[data-mid="5"]') !== null`)
	})
}
