package dotsserver

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
)

// TestCookieJar: a cookie is valid for the ClientHello it was made for,
// from the same address and port, with the same parameters (extensions
// may change, RFC 6347 §4.2.1), for one to two rotation periods.
func TestCookieJar(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	jar, err := newCookieJar(func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("192.0.2.1:5684")
	hello := func(random byte, cookie []byte, ext bool) dtlsHello {
		m := &handshake.MessageClientHello{Version: protocol.Version1_2, Cookie: cookie,
			CipherSuiteIDs: []uint16{0xc02b}, CompressionMethods: []*protocol.CompressionMethod{{}}}
		m.Random.RandomBytes[0] = random
		if ext {
			m.Extensions = []extension.Extension{&extension.UseExtendedMasterSecret{Supported: true}}
		}
		h, ok := parseClientHello(marshalRecord(t, 1, m))
		if !ok {
			t.Fatal("ClientHello does not parse")
		}
		return h
	}
	cookie := jar.make(src, hello(1, nil, false))
	if len(cookie) != cookieLen {
		t.Fatalf("cookie of %d bytes", len(cookie))
	}
	for _, tc := range []struct {
		name  string
		from  string
		h     dtlsHello
		after time.Duration
		want  bool
	}{
		{"same hello", "192.0.2.1:5684", hello(1, cookie, false), 0, true},
		{"extensions added", "192.0.2.1:5684", hello(1, cookie, true), 0, true},
		{"other port", "192.0.2.1:5685", hello(1, cookie, false), 0, false},
		{"other address", "192.0.2.2:5684", hello(1, cookie, false), 0, false},
		{"other random", "192.0.2.1:5684", hello(2, cookie, false), 0, false},
		{"cut cookie", "192.0.2.1:5684", hello(1, cookie[:16], false), 0, false},
		{"no cookie", "192.0.2.1:5684", hello(1, nil, false), 0, false},
		{"one period later, secret rotated", "192.0.2.1:5684", hello(1, cookie, false), cookieRotation + time.Second, true},
		{"two periods later", "192.0.2.1:5684", hello(1, cookie, false), 2*cookieRotation + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Unix(1_000_000, 0).Add(tc.after)
			if tc.after > 0 {
				jar.make(netip.MustParseAddrPort("198.51.100.1:1"), tc.h) // another peer's cookie rotates the secret
			}
			if got := jar.valid(netip.MustParseAddrPort(tc.from), tc.h); got != tc.want {
				t.Fatalf("valid = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGatePrefixCapIPv6: the per-prefix cap counts IPv6 sources by /56 and
// IPv4-mapped ones as IPv4 /24s. Admission is driven directly (no packet
// is sent to these documentation addresses).
func TestGatePrefixCapIPv6(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := newDTLSGate(pc, DTLSLimits{MaxHandshakesPerPrefix: 3}, slog.New(slog.DiscardHandler),
		newRateLog(slog.New(slog.DiscardHandler), time.Now, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"[2001:db8:0:100::1]:1", true},
		{"[2001:db8:0:1ff::2]:1", true},      // same /56 (2001:db8:0:100::/56)
		{"[2001:db8:0:180:ffff::3]:1", true}, // same /56, third
		{"[2001:db8:0:1aa::4]:1", false},     // same /56, over the cap
		{"[2001:db8:0:200::1]:1", true},      // next /56
		{"[::ffff:192.0.2.1]:1", true},       // mapped: 192.0.2.0/24
		{"192.0.2.2:1", true},                // the same /24
		{"[::ffff:192.0.2.3]:2", true},       // third in 192.0.2.0/24
		{"192.0.2.4:1", false},               // over the cap
		{"[2001:db8:0:100::1]:2", false},     // another port of a capped /56
		{"[2001:db8:1:100::1]:1", true},      // another /48
	} {
		g.mu.Lock()
		c := g.admitLocked(netip.MustParseAddrPort(tc.src))
		g.mu.Unlock()
		if got := c != nil; got != tc.want {
			t.Errorf("%s: admitted %v, want %v", tc.src, got, tc.want)
		}
	}
	if st := g.Stats(); st.Handshakes != 8 || st.DroppedPrefixCap != 3 {
		t.Errorf("stats %+v: want 8 handshakes, 3 dropped at the prefix cap", st)
	}
}
