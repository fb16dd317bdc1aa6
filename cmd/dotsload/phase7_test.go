package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/levee-dots/levee/pki"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// testIssuer is a throw-away CA for load certificates.
func testIssuer(t *testing.T) *issuer {
	t.Helper()
	ca, err := pki.NewCA("dotsload test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &issuer{ca: ca, roots: roots}
}

// capturedHello is a real pion ClientHello.
func capturedHello(t *testing.T) []byte {
	t.Helper()
	is := testIssuer(t)
	cert, err := is.client(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := captureClientHello(ctx, cert, is.roots)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientHello: a pion ClientHello parses and marshals back to the same
// bytes; one with a new random and a cookie is read by pion's own parser
// with the same fields.
func TestClientHello(t *testing.T) {
	raw := capturedHello(t)
	h, err := parseClientHello(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.marshal(); !bytes.Equal(got, raw) {
		t.Fatalf("marshal(parse(x)) != x:\n got %x\nwant %x", got, raw)
	}
	if len(h.Cookie) != 0 || h.Sequence != 0 || h.MessageSeq != 0 || h.Version != 0xfefd || len(h.CipherSuites) == 0 {
		t.Fatalf("first ClientHello: cookie %x, record seq %d, message_seq %d, version %#x, %d suites",
			h.Cookie, h.Sequence, h.MessageSeq, h.Version, len(h.CipherSuites))
	}
	h.Cookie = bytes.Repeat([]byte{0xc0}, 20)
	h.Sequence, h.MessageSeq = 1, 1
	for i := range h.Random {
		h.Random[i] = byte(i)
	}
	b := h.marshal()
	var rl recordlayer.RecordLayer
	if err := rl.Unmarshal(b); err != nil {
		t.Fatalf("pion record layer: %v", err)
	}
	hs, ok := rl.Content.(*handshake.Handshake)
	if !ok {
		t.Fatalf("pion reads content %T", rl.Content)
	}
	ch, ok := hs.Message.(*handshake.MessageClientHello)
	if !ok {
		t.Fatalf("pion reads message %T", hs.Message)
	}
	if rl.Header.SequenceNumber != 1 || hs.Header.MessageSequence != 1 || !bytes.Equal(ch.Cookie, h.Cookie) ||
		len(ch.CipherSuiteIDs) != len(h.CipherSuites) || len(ch.Extensions) == 0 {
		t.Fatalf("pion reads seq %d, message_seq %d, cookie %x, %d suites, %d extensions",
			rl.Header.SequenceNumber, hs.Header.MessageSequence, ch.Cookie, len(ch.CipherSuiteIDs), len(ch.Extensions))
	}
	if r := ch.Random.MarshalFixed(); !bytes.Equal(r[:], h.Random[:]) || !bytes.Equal(b[helloRandomOffset:helloRandomOffset+32], h.Random[:]) {
		t.Fatalf("random: pion %x, at helloRandomOffset %x, want %x", r, b[helloRandomOffset:helloRandomOffset+32], h.Random)
	}
}

func TestParseClientHelloRefuses(t *testing.T) {
	raw := capturedHello(t)
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), raw...)) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"headers only", raw[:recordHeaderLen+handshakeHeaderLen]},
		{"truncated", raw[:len(raw)-1]},
		{"trailing byte", append(append([]byte(nil), raw...), 0)},
		{"application data", edit(func(b []byte) []byte { b[0] = 23; return b })},
		{"epoch 1", edit(func(b []byte) []byte { b[4] = 1; return b })},
		{"server hello", edit(func(b []byte) []byte { b[recordHeaderLen] = 2; return b })},
		{"a fragment", edit(func(b []byte) []byte { b[recordHeaderLen+11]--; return b })},
		{"session id past the end", edit(func(b []byte) []byte { b[helloRandomOffset+32] = 0xff; return b })},
		{"extensions length off", edit(func(b []byte) []byte {
			h, _ := parseClientHello(raw)
			at := len(b) - len(h.Extensions) - 2
			binary.BigEndian.PutUint16(b[at:], uint16(len(h.Extensions)-1))
			return b
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if h, err := parseClientHello(tc.b); !errors.Is(err, errNotHello) {
				t.Fatalf("parseClientHello = %+v, %v; want errNotHello", h, err)
			}
		})
	}
}

// TestSpoofedDatagram: both checksums verify (a sum over the header, or
// over the pseudo-header and datagram, is 0xffff), the fields are where
// RFC 791 and RFC 768 put them, and addresses outside 127.0.0.0/8 are
// refused.
func TestSpoofedDatagram(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst string
		payload  []byte
	}{
		{"empty payload", "127.64.0.1:1024", "127.0.0.1:4646", nil},
		{"odd payload", "127.64.39.94:65535", "127.0.0.1:4646", []byte{1, 2, 3}},
		{"hello", "127.200.1.2:5000", "127.0.0.1:4646", bytes.Repeat([]byte{0xab, 0xcd}, 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
			p, err := spoofedDatagram(make([]byte, 3), src, dst, 0x1234, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != 28+len(tc.payload) || p[0] != 0x45 || int(binary.BigEndian.Uint16(p[2:])) != len(p) || p[9] != 17 ||
				binary.BigEndian.Uint16(p[4:]) != 0x1234 || netip.AddrFrom4([4]byte(p[12:16])) != src.Addr() || netip.AddrFrom4([4]byte(p[16:20])) != dst.Addr() {
				t.Fatalf("IPv4 header % x", p[:20])
			}
			if checksum(0, p[:20]) != 0 {
				t.Fatalf("IPv4 header checksum does not verify: % x", p[:20])
			}
			u := p[20:]
			if binary.BigEndian.Uint16(u) != src.Port() || binary.BigEndian.Uint16(u[2:]) != dst.Port() || int(binary.BigEndian.Uint16(u[4:])) != len(u) || !bytes.Equal(u[8:], tc.payload) {
				t.Fatalf("UDP header % x", u[:8])
			}
			pseudo := append(append(append([]byte(nil), p[12:20]...), 0, 17), byte(len(u)>>8), byte(len(u)))
			if checksum(0, append(pseudo, u...)) != 0 || binary.BigEndian.Uint16(u[6:]) == 0 {
				t.Fatalf("UDP checksum %#x does not verify", binary.BigEndian.Uint16(u[6:]))
			}
		})
	}
	for _, pair := range [][2]string{{"192.0.2.1:1", "127.0.0.1:1"}, {"127.0.0.2:1", "10.0.0.1:1"}, {"[::1]:1", "127.0.0.1:1"}} {
		if _, err := spoofedDatagram(nil, netip.MustParseAddrPort(pair[0]), netip.MustParseAddrPort(pair[1]), 0, nil); !errors.Is(err, errNotLoopback) {
			t.Errorf("%s → %s: %v, want errNotLoopback", pair[0], pair[1], err)
		}
	}
}

func TestSpoofSource(t *testing.T) {
	seen := map[netip.Addr]bool{}
	for i := range 10000 {
		a := spoofSource(i)
		b := a.As4()
		if !loopback4.Contains(a) || b[3] == 0 || b[3] == 255 || b[1] < 64 || seen[a] {
			t.Fatalf("source %d: %v (repeat %v)", i, a, seen[a])
		}
		seen[a] = true
	}
}

// TestFloodDelivery (root): a flood of 100 spoofed ClientHellos reaches a
// UDP socket on 127.0.0.1 from the 100 spoofed sources, each once, each a
// ClientHello of the template's length.
func TestFloodDelivery(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raw sockets need root")
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tmpl := capturedHello(t)
	dst := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	plan := floodPlan{dst: dst, rate: 1000, total: 100, sources: 100, template: tmpl, stop: func() string { return "" }}
	res, err := runFlood(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if !res.asPlanned(plan) {
		t.Fatalf("flood %+v, plan %v for %v", res, plan.total, plan.duration())
	}
	got := map[netip.Addr]int{}
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range plan.total {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		if _, err := parseClientHello(buf[:n]); err != nil || n != len(tmpl) {
			t.Fatalf("from %v: %d bytes: %v", from, n, err)
		}
		got[from.Addr().Unmap()]++
	}
	for i := range plan.sources {
		if got[spoofSource(i)] != 1 {
			t.Fatalf("source %v arrived %d times (all: %v)", spoofSource(i), got[spoofSource(i)], got)
		}
	}
}

func TestFloodAsPlanned(t *testing.T) {
	p := floodPlan{rate: 20000, total: 600000}
	for _, tc := range []struct {
		name string
		r    floodResult
		want bool
	}{
		{"exact", floodResult{sent: 600000, elapsed: 30 * time.Second}, true},
		{"slow last batch", floodResult{sent: 600000, elapsed: 30*time.Second + 900*time.Millisecond}, true},
		{"ran on", floodResult{sent: 600000, elapsed: 32 * time.Second}, false},
		{"too fast", floodResult{sent: 600000, elapsed: 29 * time.Second}, false},
		{"short", floodResult{sent: 599999, elapsed: 30 * time.Second}, false},
		{"send errors", floodResult{sent: 599990, sendErrors: 10, elapsed: 30 * time.Second}, false},
		{"stopped", floodResult{sent: 600000, elapsed: 30 * time.Second, stopped: "interrupted"}, false},
	} {
		if got := tc.r.asPlanned(p); got != tc.want {
			t.Errorf("%s: asPlanned = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCensored: failures count at the bound, so two failures in 100
// samples make the p99 the bound.
func TestCensored(t *testing.T) {
	ok := make([]time.Duration, 98)
	for i := range ok {
		ok[i] = time.Duration(i+1) * time.Millisecond
	}
	w := window{hs: ok, hsFailed: 2}
	if l := w.hsLat(); l.n != 100 || l.p99 != hsBound || l.p50 != 50*time.Millisecond {
		t.Fatalf("hsLat = %+v", l)
	}
	w = window{hs: ok}
	if l := w.hsLat(); l.p99 != 98*time.Millisecond {
		t.Fatalf("no failures: hsLat = %+v", l)
	}
}
