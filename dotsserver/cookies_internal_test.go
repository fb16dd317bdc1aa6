package dotsserver

import (
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
