package service_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/dns"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/service/servicetest"
	"github.com/levee-dots/levee/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a fake clock: tests move it, nothing sleeps for a lifetime.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var alpha = service.Client{CUID: "cuid-alpha", Domain: &service.Domain{Name: "alpha",
	Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("2001:db8:6401::/48")}}}

type fixture struct {
	svc *service.Service
	clk *clock
	st  *flakyStore
}

func newFixture(t *testing.T, o service.Options) *fixture {
	t.Helper()
	f := &fixture{clk: &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, st: &flakyStore{Memory: store.NewMemory()}}
	if o.Store == nil {
		o.Store = f.st
	}
	o.Now = f.clk.Now
	svc, err := service.New(o)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(svc.Close)
	f.svc = svc
	return f
}

func request(t *testing.T, sc dots.Scope) *dots.Request {
	t.Helper()
	r, err := dots.ParseMitigationRequest(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func codeOf(err error) dots.Code {
	var pe *dots.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return dots.InternalServerError
}

// apiDriver runs the lifecycle table directly against the service API.
type apiDriver struct{ f *fixture }

func (d apiDriver) Put(t *testing.T, mid uint32, sc dots.Scope, efficacy bool) (dots.Code, *dots.Scope) {
	if efficacy {
		sc.AttackStatus = dots.Ptr(dots.AttackUnderAttack)
	}
	res, err := d.f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: mid, Request: request(t, sc), Efficacy: efficacy})
	if err != nil {
		return codeOf(err), nil
	}
	out := dots.Scope{MID: dots.Ptr(mid), Note: res.Note()}
	return res.Code, &out
}

func (d apiDriver) Get(t *testing.T, mid uint32) (dots.Code, *dots.Scope) {
	r, err := d.f.svc.Mitigation(alpha, mid)
	if err != nil {
		return codeOf(err), nil
	}
	sc := r.StatusScope(d.f.clk.Now(), true, true)
	return dots.Content, &sc
}

func (d apiDriver) Delete(t *testing.T, mid uint32) dots.Code {
	if err := d.f.svc.WithdrawMitigation(alpha, mid); err != nil {
		return codeOf(err)
	}
	return dots.Deleted
}

func (d apiDriver) Advance(dur time.Duration) {
	d.f.clk.Add(dur)
	d.f.svc.Tick()
}

func TestLifecycle(t *testing.T) {
	f := newFixture(t, service.Options{})
	servicetest.Run(t, apiDriver{f})
	// The operator sees what is left: mid 101 withdrawn and gone, 200
	// expired, 100 superseded; nothing else was created.
	if all := f.svc.AllMitigations(); len(all) != 0 {
		t.Fatalf("after the lifecycle %d requests remain: %+v", len(all), all)
	}
	beta := service.Client{CUID: "cuid-beta", Domain: &service.Domain{Name: "beta", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")}}}
	for _, c := range []struct {
		client service.Client
		prefix string
	}{{alpha, "203.0.113.1/32"}, {beta, "203.0.113.129/32"}} {
		sc := dots.Scope{TargetPrefix: []string{c.prefix}, Lifetime: dots.Ptr[int64](60)}
		if _, err := f.svc.PutMitigation(context.Background(), c.client, service.PutRequest{MID: 1, Request: request(t, sc)}); err != nil {
			t.Fatal(err)
		}
	}
	all := f.svc.AllMitigations()
	if len(all) != 2 || all[0].CUID != "cuid-alpha" || all[1].CUID != "cuid-beta" {
		t.Fatalf("operator view %+v, want alpha's then beta's request", all)
	}
}

// flakyStore fails every write while fail is set.
type flakyStore struct {
	*store.Memory
	fail atomic.Bool
}

func (s *flakyStore) Apply(ctx context.Context, ops ...store.Op) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.Memory.Apply(ctx, ops...)
}

// recorder is a backend that records its calls (a unit-test fake beside
// the real backends tested below and in cmd/dotsd).
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Name() string { return "rec" }
func (r *recorder) Apply(_ context.Context, d divert.Diversion) (divert.Applied, error) {
	r.add("apply " + d.Key.String())
	return divert.Applied{Status: dots.StatusMitigated, Detail: "ok"}, nil
}
func (r *recorder) Withdraw(_ context.Context, k divert.Key) error {
	r.add("withdraw " + k.String())
	return nil
}
func (r *recorder) add(s string) { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }
func (r *recorder) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, ", ")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A failed durable write changes nothing: the client gets 5.03, the book
// is as it was, and the retry is a creation that diverts.
func TestFailedWriteChangesNothing(t *testing.T) {
	rec := &recorder{}
	f := newFixture(t, service.Options{Backends: []divert.Diverter{rec}})
	put := func(mid uint32, lifetime int64) (*service.PutResult, error) {
		sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr(lifetime)}
		return f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: mid, Request: request(t, sc)})
	}
	f.st.fail.Store(true)
	if _, err := put(1, 3600); codeOf(err) != dots.ServiceUnavailable {
		t.Fatalf("create with a failing store: %v, want 5.03", err)
	}
	if _, err := f.svc.Mitigation(alpha, 1); codeOf(err) != dots.NotFound {
		t.Fatalf("after a failed create the request exists: %v", err)
	}
	f.st.fail.Store(false)
	res, err := put(1, 3600)
	if err != nil || res.Code != dots.Created {
		t.Fatalf("retry: %+v %v, want 2.01", res, err)
	}
	waitFor(t, "the diversion", func() bool { return rec.log() == "apply cuid-alpha/1" })

	// A failed refresh keeps the lifetime; a failed withdrawal keeps the
	// request active.
	f.st.fail.Store(true)
	if _, err := put(1, 60); codeOf(err) != dots.ServiceUnavailable {
		t.Fatalf("refresh with a failing store: %v", err)
	}
	if err := f.svc.WithdrawMitigation(alpha, 1); codeOf(err) != dots.ServiceUnavailable {
		t.Fatalf("withdraw with a failing store: %v", err)
	}
	if err := f.svc.ResetSessionConfig(alpha); codeOf(err) != dots.ServiceUnavailable {
		t.Fatalf("config reset with a failing store: %v", err)
	}
	f.st.fail.Store(false)
	r, err := f.svc.Mitigation(alpha, 1)
	if err != nil || r.Lifetime != 3600 || !r.Active() || r.Status == dots.StatusClientWithdrawn {
		t.Fatalf("after failed refresh and withdrawal: %+v %v", r, err)
	}
	// Nothing reached the mitigator but the one successful create.
	if got := rec.log(); got != "apply cuid-alpha/1" {
		t.Fatalf("backend calls %s: a failed change reached the mitigator", got)
	}
}

// Counters appear only when a backend measured them, summed over backends
// and monotonic across a backend's counter reset.
func TestCountersMeasuredOrAbsent(t *testing.T) {
	f := newFixture(t, service.Options{Backends: []divert.Diverter{&recorder{}}})
	sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)}
	if _, err := f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: 1, Request: request(t, sc)}); err != nil {
		t.Fatal(err)
	}
	r, _ := f.svc.Mitigation(alpha, 1)
	if r.Counters != nil {
		t.Fatalf("unmeasured request has counters %+v", r.Counters)
	}
	if s := r.StatusScope(f.clk.Now(), false, true); s.BytesDropped != nil || s.PktsDropped != nil || s.BpsDropped != nil || s.PpsDropped != nil {
		t.Fatalf("unmeasured status carries counters: %+v", s)
	}
	k := divert.Key{CUID: alpha.CUID, MID: 1}
	f.svc.Measured("scrub-a", k, divert.Counters{BytesDropped: 1000, PktsDropped: 10, BPSDropped: 8000, PPSDropped: 10})
	f.svc.Measured("scrub-b", k, divert.Counters{BytesDropped: 500, PktsDropped: 5, BPSDropped: 4000, PPSDropped: 5})
	f.svc.Measured("scrub-a", k, divert.Counters{BytesDropped: 100, PktsDropped: 1, BPSDropped: 800, PPSDropped: 1}) // reset
	r, _ = f.svc.Mitigation(alpha, 1)
	want := struct{ b, p, bps, pps uint64 }{1000 + 100 + 500, 10 + 1 + 5, 800 + 4000, 1 + 5}
	if c := r.Counters; c == nil || c.BytesDropped != want.b || c.PktsDropped != want.p || c.BPSDropped != want.bps || c.PPSDropped != want.pps {
		t.Fatalf("counters %+v, want %+v", r.Counters, want)
	}
	// A sample for an unknown request is dropped.
	f.svc.Measured("scrub-a", divert.Key{CUID: alpha.CUID, MID: 9}, divert.Counters{BytesDropped: 1})
	if _, err := f.svc.Mitigation(alpha, 9); codeOf(err) != dots.NotFound {
		t.Fatal("a sample created a request")
	}
}

// Make before break: the covering request is diverted before the requests
// it supersedes are withdrawn, and the result names them.
func TestSupersedeMakesBeforeBreak(t *testing.T) {
	rec := &recorder{}
	f := newFixture(t, service.Options{Backends: []divert.Diverter{rec}})
	put := func(mid uint32, p string) *service.PutResult {
		sc := dots.Scope{TargetPrefix: []string{p}, Lifetime: dots.Ptr[int64](3600)}
		res, err := f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: mid, Request: request(t, sc)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	put(1, "203.0.113.8/32")
	put(2, "203.0.113.9/32")
	res := put(3, "203.0.113.8/29")
	if res.Note() != "supersedes mids 1, 2" {
		t.Fatalf("note %q", res.Note())
	}
	want := "apply cuid-alpha/1, apply cuid-alpha/2, apply cuid-alpha/3, withdraw cuid-alpha/1, withdraw cuid-alpha/2"
	waitFor(t, "the calls", func() bool { return rec.log() == want })
}

// Events of one client arrive in the order the changes happened.
func TestWatchOrder(t *testing.T) {
	f := newFixture(t, service.Options{})
	var mu sync.Mutex
	var got []string
	cancel := f.svc.Watch(func(ev service.Event) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range ev.Changed {
			got = append(got, r.Status.String()+"/"+time.Duration(r.Lifetime*int64(time.Second)).String())
		}
	})
	defer cancel()
	for _, lt := range []int64{3600, 600, 60, 30, 20, 10} {
		sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr(lt)}
		if _, err := f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: 1, Request: request(t, sc)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "six events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 6 })
	mu.Lock()
	defer mu.Unlock()
	if s := strings.Join(got[:6], " "); !strings.HasSuffix(s, "1h0m0s attack-mitigation-in-progress/10m0s attack-mitigation-in-progress/1m0s attack-mitigation-in-progress/30s attack-mitigation-in-progress/20s attack-mitigation-in-progress/10s") {
		t.Fatalf("events out of order: %s", s)
	}
}

// blackholed listens on loopback TCP, accepts and never answers: a DNS
// primary that does not respond.
func blackholed(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// One stuck backend never delays another: a BGP-only diversion does not
// wait behind a DNS primary that does not answer (the real DNS backend
// against a black-holed primary, the real BGP speaker in dry-run).
func TestStuckDNSDoesNotDelayBGP(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	var svc *service.Service
	updates := func(b string, k divert.Key, a divert.Applied) {
		if svc != nil {
			svc.DiversionUpdate(b, k, a)
		}
	}
	zone := dns.Zone{Name: "svc.example.", Primary: blackholed(t), KeyName: "dots-key.", Secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
		Scrubbing: []netip.Addr{netip.MustParseAddr("192.0.2.80")}, Clients: map[string][]string{"alpha": {"www.svc.example."}}}
	dnsBackend, err := dns.New(dns.Config{Zones: []dns.Zone{zone}, Timeout: 3 * time.Second, Retries: -1}, store.NewMemory(), log, updates)
	if err != nil {
		t.Fatal(err)
	}
	speaker, err := bgp.New(context.Background(), bgp.Config{LocalAS: 65001, RouterID: "192.0.2.254", DryRun: true,
		DiscardNextHopV4: "192.0.2.1", DiscardNextHopV6: "100::1", MinPrefixV4: 24, MinPrefixV6: 48,
		Neighbors: []bgp.Neighbor{{Name: "edge1", Address: "127.0.0.1", Port: uint32(closedPort(t)), PeerAS: 65000,
			Families: []string{"ipv4-unicast", "ipv4-flowspec"}, Receives: []string{"rtbh", "flowspec"}}}}, log, updates)
	if err != nil {
		t.Fatal(err)
	}
	defer speaker.Close()
	resolver := service.LookupResolver{Lookup: fixedResolver{"www.svc.example": {netip.MustParseAddr("203.0.113.80")}}}
	f := newFixture(t, service.Options{Backends: []divert.Diverter{dnsBackend, speaker}, Resolver: resolver})
	svc = f.svc
	// mid 1 names the DNS-diverted name: its DNS update hangs.
	sc := dots.Scope{TargetFQDN: []string{"www.svc.example"}, Lifetime: dots.Ptr[int64](3600)}
	if _, err := f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: 1, Request: request(t, sc)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the DNS lane enter its call
	start := time.Now()
	sc = dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, TargetProtocol: []uint32{6}, Lifetime: dots.Ptr[int64](3600)}
	if _, err := f.svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: 2, Request: request(t, sc)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the BGP outcome of mid 2", func() bool {
		r, err := f.svc.Mitigation(alpha, 2)
		return err == nil && strings.Contains(r.Note, "bgp: dry-run")
	})
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the BGP-only diversion took %v behind a stuck DNS primary", d)
	}
	r, _ := f.svc.Mitigation(alpha, 1)
	t.Logf("mid 1 while the primary hangs: %s %q; mid 2 after %v", r.Status, r.Note, time.Since(start).Round(time.Millisecond))
}

// closedPort returns a loopback TCP port nobody listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type fixedResolver map[string][]netip.Addr

func (f fixedResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

// The totals stay monotonic across a restart of the service too: a
// backend's next sample continues its counter, or is a reset if lower.
func TestCountersSurviveRestart(t *testing.T) {
	st := store.NewMemory()
	k := divert.Key{CUID: alpha.CUID, MID: 1}
	start := func() *service.Service {
		svc, err := service.New(service.Options{Store: st, Backends: []divert.Diverter{&recorder{}}})
		if err != nil {
			t.Fatal(err)
		}
		svc.Start()
		return svc
	}
	svc := start()
	sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)}
	if _, err := svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: 1, Request: request(t, sc)}); err != nil {
		t.Fatal(err)
	}
	svc.Measured("scrub", k, divert.Counters{BytesDropped: 4000, PktsDropped: 40})
	svc.Close()

	for _, step := range []struct {
		name       string
		sample     divert.Counters
		bytes, pkt uint64
	}{
		{"restored", divert.Counters{}, 4000, 40},
		{"the scrubber counted on", divert.Counters{BytesDropped: 5000, PktsDropped: 50}, 5000, 50},
		{"the scrubber restarted", divert.Counters{BytesDropped: 10, PktsDropped: 1}, 5010, 51},
	} {
		if step.name != "restored" {
			svc.Measured("scrub", k, step.sample)
		} else {
			svc = start()
			defer svc.Close()
		}
		r, _ := svc.Mitigation(alpha, 1)
		if r.Counters == nil || r.Counters.BytesDropped != step.bytes || r.Counters.PktsDropped != step.pkt {
			t.Fatalf("%s: counters %+v, want %d B / %d pkt", step.name, r.Counters, step.bytes, step.pkt)
		}
	}
}
