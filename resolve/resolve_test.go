package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var zone = []string{
	"www.example.com. 300 IN A 203.0.113.10",
	"www.example.com. 120 IN AAAA 2001:db8::10",
	"www.example.com. 300 IN A 203.0.113.9",
	"alias.example.com. 60 IN CNAME mid.example.com.",
	"mid.example.com. 600 IN CNAME www.example.com.",
	"short.example.com. 1 IN A 203.0.113.20",
	"long.example.com. 86400 IN A 203.0.113.21",
	"loop1.example.com. 300 IN CNAME loop2.example.com.",
	"loop2.example.com. 300 IN CNAME loop1.example.com.",
	"mail.example.com. 300 IN MX 10 www.example.com.",
	"dangling.example.com. 300 IN CNAME gone.example.net.",
}

type fixture struct {
	f   *fakeDNS
	clk *clock
	r   *Resolver
}

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	f := startFakeDNS(t, zone...)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if o.Servers == nil {
		o.Servers = []string{f.addr}
	}
	if o.Timeout == 0 {
		o.Timeout = 300 * time.Millisecond
	}
	o.Now = clk.now
	return &fixture{f: f, clk: clk, r: New(o)}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestResolve(t *testing.T) {
	fx := newFixture(t, Options{})
	ctx := context.Background()
	for i, c := range []struct {
		name  string
		addrs []netip.Addr
		ttl   time.Duration
		err   error
	}{
		{"www.example.com.", addrs("203.0.113.9", "203.0.113.10", "2001:db8::10"), 120 * time.Second, nil},
		{"WWW.Example.COM", addrs("203.0.113.9", "203.0.113.10", "2001:db8::10"), 120 * time.Second, nil}, // served from the cache
		{"alias.example.com", addrs("203.0.113.9", "203.0.113.10", "2001:db8::10"), 60 * time.Second, nil},
		{"short.example.com.", addrs("203.0.113.20"), DefaultMinTTL, nil},
		{"long.example.com.", addrs("203.0.113.21"), DefaultMaxTTL, nil},
		{"nope.example.com.", nil, 0, ErrNotFound},
		{"mail.example.com.", nil, 0, ErrNoAddress},
		{"dangling.example.com.", nil, 0, ErrNoAddress},
		{"loop1.example.com.", nil, 0, ErrUnreachable},
		{"bad name.example.", nil, 0, ErrBadName},
		{strings.Repeat("a.", 127) + "com.", nil, 0, ErrBadName},
		{"", nil, 0, ErrBadName},
		{"192.0.2.7", addrs("192.0.2.7"), DefaultMaxTTL, nil},
		{"[2001:db8::7]", addrs("2001:db8::7"), DefaultMaxTTL, nil},
	} {
		got, ttl, err := fx.r.Resolve(ctx, c.name)
		if !errors.Is(err, c.err) || !slices.Equal(got, c.addrs) || ttl != c.ttl {
			t.Errorf("%d: Resolve(%q) = %v, %v, %v; want %v, %v, %v", i, c.name, got, ttl, err, c.addrs, c.ttl, c.err)
		}
		if err != nil && c.name != "" && !strings.Contains(err.Error(), strings.ToLower(strings.TrimSuffix(c.name, ".")[:8])) {
			t.Errorf("%d: error %q does not name %q", i, err, c.name)
		}
	}
	_, _, err := fx.r.Resolve(ctx, "nope.example.com")
	if want := "resolve nope.example.com.: the name does not exist (NXDOMAIN) (from " + fx.f.addr + ")"; err == nil || err.Error() != want {
		t.Errorf("NXDOMAIN error %q, want %q", err, want)
	}
	_, _, err = fx.r.Resolve(ctx, "loop1.example.com")
	if err == nil || !strings.Contains(err.Error(), "CNAME chain of loop1.example.com. longer than 8 links") {
		t.Errorf("CNAME loop error %q", err)
	}
}

func TestLookupNetIP(t *testing.T) {
	fx := newFixture(t, Options{})
	ctx := context.Background()
	for i, c := range []struct {
		network, name string
		want          []netip.Addr
		err           string
	}{
		{"ip", "www.example.com", addrs("203.0.113.9", "203.0.113.10", "2001:db8::10"), ""},
		{"ip4", "www.example.com", addrs("203.0.113.9", "203.0.113.10"), ""},
		{"ip6", "www.example.com", addrs("2001:db8::10"), ""},
		{"ip6", "short.example.com", nil, "the name has no A or AAAA records: none for ip6 (it has [203.0.113.20])"},
		{"tcp", "www.example.com", nil, `network "tcp": want ip, ip4 or ip6`},
		{"ip", "nope.example.com", nil, "does not exist"},
	} {
		got, err := fx.r.LookupNetIP(ctx, c.network, c.name)
		if !slices.Equal(got, c.want) || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%d: LookupNetIP(%s, %s) = %v, %v; want %v, %q", i, c.network, c.name, got, err, c.want, c.err)
		}
	}
}

// A fresh answer is served from the cache without a query; an expired one
// is asked again.
func TestCacheAndTTL(t *testing.T) {
	fx := newFixture(t, Options{})
	ctx := context.Background()
	if _, ttl, err := fx.r.Resolve(ctx, "www.example.com"); err != nil || ttl != 120*time.Second {
		t.Fatal(ttl, err)
	}
	fx.clk.add(100 * time.Second)
	if _, ttl, err := fx.r.Resolve(ctx, "www.example.com"); err != nil || ttl != 20*time.Second {
		t.Fatalf("cached: ttl %v %v, want the 20 s left", ttl, err)
	}
	if u, _ := fx.f.counts(); u != 2 {
		t.Fatalf("%d UDP queries, want 2 (A and AAAA once)", u)
	}
	fx.f.set("www.example.com. 50 IN A 198.51.100.1")
	fx.clk.add(21 * time.Second)
	got, ttl, err := fx.r.Resolve(ctx, "www.example.com")
	if err != nil || !slices.Equal(got, addrs("198.51.100.1")) || ttl != 50*time.Second {
		t.Fatalf("after expiry: %v %v %v", got, ttl, err)
	}
}

// The servers stop answering: the last good answer is served with the
// stale TTL and no error, for at most MaxStale after its expiry.
func TestServeStaleWhenServersFail(t *testing.T) {
	for _, mode := range []string{"timeout", "SERVFAIL", "REFUSED"} {
		t.Run(mode, func(t *testing.T) {
			fx := newFixture(t, Options{StaleTTL: 10 * time.Second, MaxStale: time.Hour})
			ctx := context.Background()
			want := addrs("203.0.113.9", "203.0.113.10", "2001:db8::10")
			if got, _, err := fx.r.Resolve(ctx, "www.example.com"); err != nil || !slices.Equal(got, want) {
				t.Fatal(got, err)
			}
			fx.f.with(func(f *fakeDNS) {
				switch mode {
				case "timeout":
					f.drop = true
				case "SERVFAIL":
					f.rcode = dns.RcodeServerFailure
				case "REFUSED":
					f.rcode = dns.RcodeRefused
				}
			})
			fx.clk.add(121 * time.Second)
			a, err := fx.r.Lookup(ctx, "www.example.com")
			if err != nil || !slices.Equal(a.Addrs, want) || a.TTL != 10*time.Second || !a.Stale ||
				!errors.Is(a.Err, ErrUnreachable) || !strings.Contains(a.Err.Error(), fx.f.addr) {
				t.Fatalf("stale: %+v %v", a, err)
			}
			t.Logf("stale because: %v", a.Err)
			fx.clk.add(time.Hour)
			if got, _, err := fx.r.Resolve(ctx, "www.example.com"); !errors.Is(err, ErrUnreachable) || got != nil {
				t.Fatalf("after MaxStale: %v %v", got, err)
			}
			if _, _, err := fx.r.Resolve(ctx, "alias.example.com"); !errors.Is(err, ErrUnreachable) {
				t.Fatalf("never resolved: %v", err)
			}
		})
	}
}

// Excluded addresses (our diversion) are dropped; a name answering only
// excluded addresses gets its last good answer, or ErrExcluded.
func TestExclude(t *testing.T) {
	scrub := addrs("192.0.2.80", "2001:db8:5c::80")
	fx := newFixture(t, Options{Exclude: func(a netip.Addr) bool { return slices.Contains(scrub, a) }})
	ctx := context.Background()
	want := addrs("203.0.113.9", "203.0.113.10", "2001:db8::10")
	if got, _, err := fx.r.Resolve(ctx, "www.example.com"); err != nil || !slices.Equal(got, want) {
		t.Fatal(got, err)
	}
	// The name is diverted: only scrubbing addresses.
	fx.f.set("www.example.com. 30 IN A 192.0.2.80", "www.example.com. 30 IN AAAA 2001:db8:5c::80",
		"api.example.com. 30 IN A 192.0.2.80", "mixed.example.com. 30 IN A 192.0.2.80", "mixed.example.com. 30 IN A 198.51.100.3")
	fx.clk.add(48 * time.Hour) // older than MaxStale: still the best knowledge
	a, err := fx.r.Lookup(ctx, "www.example.com")
	if err != nil || !slices.Equal(a.Addrs, want) || a.TTL != DefaultStaleTTL || !a.Stale || !errors.Is(a.Err, ErrExcluded) {
		t.Fatalf("diverted name: %+v %v", a, err)
	}
	if _, _, err := fx.r.Resolve(ctx, "api.example.com"); !errors.Is(err, ErrExcluded) {
		t.Fatalf("diverted name never seen before: %v", err)
	}
	if got, _, err := fx.r.Resolve(ctx, "mixed.example.com"); err != nil || !slices.Equal(got, addrs("198.51.100.3")) {
		t.Fatalf("mixed: %v %v", got, err)
	}
	if _, _, err := fx.r.Resolve(ctx, "192.0.2.80"); !errors.Is(err, ErrExcluded) {
		t.Fatalf("excluded literal: %v", err)
	}
}

// A truncated UDP answer is asked again over TCP.
func TestTruncatedAnswerOverTCP(t *testing.T) {
	fx := newFixture(t, Options{})
	fx.f.with(func(f *fakeDNS) { f.truncate = true })
	got, _, err := fx.r.Resolve(context.Background(), "www.example.com")
	if err != nil || len(got) != 3 {
		t.Fatal(got, err)
	}
	if u, tc := fx.f.counts(); u != 2 || tc != 2 {
		t.Fatalf("UDP %d, TCP %d queries; want 2 and 2", u, tc)
	}
}

// A big RRset arrives in full over TCP, bounded to MaxAddrs, whether the
// server truncates the UDP answer (as it should) or sends a datagram
// larger than our EDNS buffer.
func TestBigAnswerBounded(t *testing.T) {
	for _, oversize := range []bool{false, true} {
		t.Run(fmt.Sprintf("oversize=%v", oversize), func(t *testing.T) {
			fx := newFixture(t, Options{})
			var recs []string
			for i := 0; i < 100; i++ {
				recs = append(recs, fmt.Sprintf("big.example.com. 300 IN A 198.51.100.%d", i))
			}
			fx.f.set(recs...)
			fx.f.with(func(f *fakeDNS) { f.oversize = oversize })
			got, _, err := fx.r.Resolve(context.Background(), "big.example.com")
			if err != nil || len(got) != MaxAddrs || got[0] != netip.MustParseAddr("198.51.100.0") {
				t.Fatalf("%d addresses, first %v, %v", len(got), got, err)
			}
			if _, tc := fx.f.counts(); tc != 1 {
				t.Fatalf("%d TCP queries, want 1 (A)", tc)
			}
		})
	}
}

// The first server is down (a closed port): the second answers.
func TestFailover(t *testing.T) {
	dead := closedPort(t)
	f := startFakeDNS(t, zone...)
	r := New(Options{Servers: []string{dead, f.addr}, Timeout: 300 * time.Millisecond})
	a, err := r.Lookup(context.Background(), "www.example.com")
	if err != nil || len(a.Addrs) != 3 || a.Server != f.addr || a.Stale {
		t.Fatalf("%+v %v", a, err)
	}
}

// closedPort returns a 127.0.0.1 UDP address nothing listens on.
func closedPort(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	return addr
}

func TestCacheBound(t *testing.T) {
	fx := newFixture(t, Options{MaxNames: 2})
	ctx := context.Background()
	for _, n := range []string{"www.example.com", "short.example.com", "www.example.com", "long.example.com"} {
		if _, _, err := fx.r.Resolve(ctx, n); err != nil {
			t.Fatal(n, err)
		}
	}
	if n := fx.r.cache.len(); n != 2 {
		t.Fatalf("cache holds %d names, want 2", n)
	}
	if _, ok := fx.r.cache.get("short.example.com."); ok {
		t.Fatal("the least recently used name was kept")
	}
	if _, ok := fx.r.cache.get("www.example.com."); !ok {
		t.Fatal("a recently used name was evicted")
	}
}

func TestServers(t *testing.T) {
	for i, c := range []struct{ in, want, err string }{
		{"192.0.2.53:5353", "192.0.2.53:5353", ""},
		{"192.0.2.53", "192.0.2.53:53", ""},
		{"[2001:db8::53]:53", "[2001:db8::53]:53", ""},
		{"2001:db8::53", "[2001:db8::53]:53", ""},
		{"ns.example.com:53", "", "want an IP address and port"},
		{"192.0.2.53:0", "", "want an IP address and port"},
		{"192.0.2.53:99999", "", "want an IP address and port"},
	} {
		got, err := CheckServer(c.in)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%d: CheckServer(%q) = %q, %v", i, c.in, got, err)
		}
	}
	r := New(Options{Servers: []string{"ns.example.com"}})
	if _, _, err := r.Resolve(context.Background(), "www.example.com"); err == nil ||
		!strings.Contains(err.Error(), `no usable server: resolve: server "ns.example.com"`) {
		t.Fatalf("only invalid servers: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := New(Options{ResolvConf: conf}).Servers(); !slices.Equal(got, []string{"192.0.2.53:53", "[2001:db8::53]:53"}) {
		t.Fatalf("servers from resolv.conf: %v", got)
	}
}

// No server in resolv.conf: Go's resolver (here one that asks the fake
// server), with SystemTTL.
func TestSystemFallback(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("# no nameserver\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startFakeDNS(t, zone...)
	sys := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, f.addr)
	}}
	r := New(Options{ResolvConf: conf, SystemTTL: 42 * time.Second, System: sys, Timeout: time.Second})
	if len(r.Servers()) != 0 {
		t.Fatal(r.Servers())
	}
	a, err := r.Lookup(context.Background(), "www.example.com")
	if err != nil || !slices.Equal(a.Addrs, addrs("203.0.113.9", "203.0.113.10", "2001:db8::10")) ||
		a.TTL != 42*time.Second || a.Server != "system" {
		t.Fatalf("%+v %v", a, err)
	}
	if _, err := r.Lookup(context.Background(), "nope.example.com"); !errors.Is(err, ErrNotFound) ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("NXDOMAIN: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	fx := newFixture(t, Options{MaxNames: 3})
	names := []string{"www.example.com", "alias.example.com", "short.example.com", "long.example.com", "nope.example.com"}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				n := names[(i+j)%len(names)]
				if _, _, err := fx.r.Resolve(context.Background(), n); err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(n, err)
				}
				fx.clk.add(time.Second)
			}
		}(i)
	}
	wg.Wait()
}
