package dotsclient

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/store"
)

// alternateServer starts a second server on host with the port of e and
// e's certificate and CA: an alternate server of the same provider.
func alternateServer(t *testing.T, e *testEnv, host string) *dotsserver.Server {
	t.Helper()
	_, port, _ := net.SplitHostPort(e.addr)
	cert, _, err := pki.LoadKeyPair(e.dev.ServerCert, e.dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dotsserver.New(dotsserver.Options{Listen: []string{net.JoinHostPort(host, port)}, Certificate: cert, ClientCAs: e.roots,
		Domains: dotstest.Domains(), Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Skipf("skipping: no second loopback address %s: %v", host, err)
	}
	t.Cleanup(s.Close)
	return s
}

func mitigate(t *testing.T, c *Client, mid uint32, prefix string) *Response {
	t.Helper()
	r, err := c.Mitigate(timeout(t, 10*time.Second), mid, dots.Scope{TargetPrefix: []string{prefix}, Lifetime: dots.Ptr[int64](3600)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRedirectFollow: a client redirected by its server (5.03, RFC 9132
// §4.6) moves to the alternate with Happy Eyeballs over the addresses of
// the redirect and is served there; redirected back to the first server,
// which it used within five minutes, it refuses, and keeps the alternate.
func TestRedirectFollow(t *testing.T) {
	a := newTestEnv(t, nil)
	b := alternateServer(t, a, "127.0.0.2")
	_, port, _ := net.SplitHostPort(a.addr)
	redirect := func(s *dotsserver.Server, to string) {
		t.Helper()
		if err := s.SetRedirect(dotsserver.Redirect{AltServer: "localhost", AltServerRecord: []netip.Addr{netip.MustParseAddr(to)}, TTL: 10 * time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	for i, transport := range []string{"dtls", "tls"} {
		mid := uint32(10 * i) // each run its own requests on the shared servers
		t.Run(transport, func(t *testing.T) {
			cfg := a.config(t, "alpha", a.addr)
			cfg.Transport = transport
			first, err := Dial(timeout(t, 10*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			var rd Redirects
			redirect(a.Srv, "127.0.0.2")
			defer a.Srv.ClearRedirect()
			r := mitigate(t, first, mid+1, "203.0.113.1/32")
			if _, ok := Redirected(r); !ok {
				t.Fatalf("first server: %s %q, want a 5.03 redirect", r.Code, r.Diag)
			}
			second, err := rd.Dial(timeout(t, 10*time.Second), cfg, first, r)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			if want := net.JoinHostPort("127.0.0.2", port); second.Remote() != want || second.Transport() != transport {
				t.Fatalf("redirected session to %s over %s, want %s over %s", second.Remote(), second.Transport(), want, transport)
			}
			if r := mitigate(t, second, mid+1, "203.0.113.1/32"); r.Code != dots.Created {
				t.Fatalf("alternate server: %s %q, want 2.01", r.Code, r.Diag)
			}

			redirect(b, "127.0.0.1")
			defer b.ClearRedirect()
			r = mitigate(t, second, mid+2, "203.0.113.2/32")
			if _, ok := Redirected(r); !ok {
				t.Fatalf("alternate server redirecting back: %s %q, want a 5.03 redirect", r.Code, r.Diag)
			}
			if c, err := rd.Dial(timeout(t, 10*time.Second), cfg, second, r); !errors.Is(err, ErrRedirectLoop) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("redirect back to the first server: %v, want ErrRedirectLoop", err)
			}
			if servers, name := rd.Servers([]string{a.addr}, false); !slices.Equal(servers, []string{second.Remote()}) || name != "localhost" {
				t.Fatalf("servers after the refused redirect: %q %q, want the alternate", servers, name)
			}
		})
	}
}

// TestRedirectsTTL: the alternate is kept for the Max-Age of the 5.03,
// past it only during an attack; Max-Age 0 is for the request in
// progress, 2^32-1 until redirected again; a server used within five
// minutes is refused, one used longer ago followed.
func TestRedirectsTTL(t *testing.T) {
	const from, prov = "192.0.2.1:4646", "192.0.2.1:4646"
	resp := func(maxAge uint32, name string, records ...string) *Response {
		return &Response{Code: dots.ServiceUnavailable, MaxAge: &maxAge,
			Body: &dots.Message{RedirectedSignal: &dots.RedirectedSignal{AltServer: name, AltServerRecord: records}}}
	}
	type step struct {
		advance     time.Duration
		underAttack bool
		want        string // the first server Servers returns
	}
	for _, tc := range []struct {
		name    string
		used    string        // a host used before, at the start
		since   time.Duration // how long before the redirect
		r       *Response
		servers []string // what Follow returns; nil: ErrRedirectLoop
		steps   []step
	}{
		{name: "ttl", r: resp(600, "alt.example", "198.51.100.7"), servers: []string{"198.51.100.7:4646"},
			steps: []step{{0, false, "198.51.100.7:4646"}, {599 * time.Second, false, "198.51.100.7:4646"}, {time.Second, false, prov}}},
		{name: "ttl over during an attack", r: resp(600, "alt.example", "198.51.100.7"), servers: []string{"198.51.100.7:4646"},
			steps: []step{{time.Hour, true, "198.51.100.7:4646"}, {0, false, prov}}},
		{name: "name only", r: resp(600, "alt.example"), servers: []string{"alt.example:4646"},
			steps: []step{{0, false, "alt.example:4646"}}},
		{name: "max-age 0: this request only", r: resp(0, "alt.example", "2001:db8::7"), servers: []string{"[2001:db8::7]:4646"},
			steps: []step{{0, false, prov}}},
		{name: "infinite", r: resp(math.MaxUint32, "alt.example", "198.51.100.7"), servers: []string{"198.51.100.7:4646"},
			steps: []step{{10000 * time.Hour, false, "198.51.100.7:4646"}}},
		{name: "to itself", r: resp(600, "alt.example", "192.0.2.1")},
		{name: "address used 4 min ago", used: "198.51.100.7:4646", since: 4 * time.Minute, r: resp(600, "alt.example", "198.51.100.7")},
		{name: "name used 4 min ago", used: "ALT.example.", since: 4 * time.Minute, r: resp(600, "alt.example", "198.51.100.7")},
		{name: "used 5 min ago", used: "198.51.100.7:4646", since: 5 * time.Minute, r: resp(600, "alt.example", "198.51.100.7"),
			servers: []string{"198.51.100.7:4646"}, steps: []step{{0, false, "198.51.100.7:4646"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := dotstest.NewClock()
			now := clock.Now()
			rd := Redirects{Now: func() time.Time { return now }}
			if tc.used != "" {
				rd.Used(tc.used)
			}
			now = now.Add(tc.since)
			servers, err := rd.Follow(from, tc.r)
			if tc.servers == nil {
				if !errors.Is(err, ErrRedirectLoop) {
					t.Fatalf("Follow: %q %v, want ErrRedirectLoop", servers, err)
				}
				if got, _ := rd.Servers([]string{prov}, false); !slices.Equal(got, []string{prov}) {
					t.Fatalf("after a refused redirect: %q, want the provisioned server", got)
				}
				return
			}
			if err != nil || !slices.Equal(servers, tc.servers) {
				t.Fatalf("Follow: %q %v, want %q", servers, err, tc.servers)
			}
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				if got, _ := rd.Servers([]string{prov}, s.underAttack); len(got) == 0 || got[0] != s.want {
					t.Fatalf("step %d (+%v, attack %v): servers %q, want %s first", i, s.advance, s.underAttack, got, s.want)
				}
			}
		})
	}
	if _, err := new(Redirects).Follow(from, &Response{Code: dots.ServiceUnavailable, Diag: "busy"}); err == nil {
		t.Error("Follow of a 5.03 without a redirected-signal body: no error")
	}
}
