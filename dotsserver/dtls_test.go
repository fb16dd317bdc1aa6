package dotsserver_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/elliptic"
	"github.com/pion/dtls/v3/pkg/crypto/hash"
	"github.com/pion/dtls/v3/pkg/crypto/signature"
	"github.com/pion/dtls/v3/pkg/crypto/signaturehash"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"

	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// dtlsServer starts a server with the given DTLS limits.
func dtlsServer(t *testing.T, lim dotsserver.DTLSLimits) *dotstest.Server {
	t.Helper()
	return dotstest.Start(t, dotstest.Options{Mutate: func(o *dotsserver.Options) { o.Limits.DTLS = lim }})
}

// rawPeer speaks the first DTLS 1.2 flights by hand from one source.
type rawPeer struct {
	t      testing.TB
	c      *net.UDPConn
	srv    *net.UDPAddr
	random handshake.Random
	recSeq uint64
	msgSeq uint16
}

func newRawPeer(t testing.TB, ip, srv string) *rawPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sa, err := net.ResolveUDPAddr("udp4", srv)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, c: c, srv: sa}
	p.random.GMTUnixTime = time.Now()
	_, _ = rand.Read(p.random.RandomBytes[:])
	return p
}

// clientHello is a ClientHello the server accepts (ECDHE-ECDSA, extended
// master secret), as one record.
func clientHello(random handshake.Random, recSeq uint64, msgSeq uint16, cookie []byte) ([]byte, error) {
	rec := &recordlayer.RecordLayer{
		Header: recordlayer.Header{Version: protocol.Version1_2, SequenceNumber: recSeq},
		Content: &handshake.Handshake{
			Header: handshake.Header{MessageSequence: msgSeq},
			Message: &handshake.MessageClientHello{
				Version: protocol.Version1_2, Random: random, Cookie: cookie,
				CipherSuiteIDs:     []uint16{0xc02b, 0xc02f, 0xc0ae},
				CompressionMethods: []*protocol.CompressionMethod{{}},
				Extensions: []extension.Extension{
					&extension.SupportedEllipticCurves{EllipticCurves: []elliptic.Curve{elliptic.P256, elliptic.X25519}},
					&extension.SupportedPointFormats{PointFormats: []elliptic.CurvePointFormat{elliptic.CurvePointFormatUncompressed}},
					&extension.SupportedSignatureAlgorithms{SignatureHashAlgorithms: []signaturehash.Algorithm{
						{Hash: hash.SHA256, Signature: signature.ECDSA}, {Hash: hash.SHA256, Signature: signature.RSA}}},
					&extension.UseExtendedMasterSecret{Supported: true},
				},
			},
		},
	}
	b, err := rec.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal ClientHello: %w", err)
	}
	return b, nil
}

// hello sends the next ClientHello of the handshake.
func (p *rawPeer) hello(cookie []byte) {
	p.t.Helper()
	b, err := clientHello(p.random, p.recSeq, p.msgSeq, cookie)
	if err != nil {
		p.t.Fatal(err)
	}
	p.recSeq++
	p.msgSeq++
	if _, err := p.c.WriteToUDP(b, p.srv); err != nil {
		p.t.Fatal(err)
	}
}

// record is the first record of a datagram from the server.
type record struct {
	contentType byte
	recSeq      uint64
	hsType      byte   // handshake records
	msgSeq      uint16 // handshake records
	cookie      []byte // HelloVerifyRequest
}

// read returns the next datagram's first record, or false after wait.
func (p *rawPeer) read(wait time.Duration) (record, bool) {
	p.t.Helper()
	buf := make([]byte, 64<<10)
	_ = p.c.SetReadDeadline(time.Now().Add(wait))
	n, _, err := p.c.ReadFromUDP(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return record{}, false
	}
	if err != nil {
		p.t.Fatal(err)
	}
	b := buf[:n]
	if n < 13 {
		p.t.Fatalf("short datagram from the server: % x", b)
	}
	r := record{contentType: b[0], recSeq: binary.BigEndian.Uint64(append([]byte{0, 0}, b[5:11]...))}
	if r.contentType == 22 && n >= 25 {
		r.hsType, r.msgSeq = b[13], binary.BigEndian.Uint16(b[17:19])
		if r.hsType == 3 && n >= 28 && n >= 28+int(b[27]) {
			r.cookie = append([]byte(nil), b[28:28+int(b[27])]...)
		}
	}
	return r, true
}

// helloVerify sends a first ClientHello and returns the HelloVerifyRequest.
func (p *rawPeer) helloVerify() record {
	p.t.Helper()
	p.hello(nil)
	r, ok := p.read(5 * time.Second)
	if !ok || r.contentType != 22 || r.hsType != 3 || len(r.cookie) == 0 {
		p.t.Fatalf("first ClientHello: want a HelloVerifyRequest, got %+v (received %v)", r, ok)
	}
	return r
}

// waitFor polls cond until it holds or the bound passes.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(bound); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", bound, what)
		}
	}
}

// TestDTLSSequenceNumbers: the stateless HelloVerifyRequest has
// message_seq 0 and the ClientHello's record sequence number (RFC 6347
// §4.2.1), and the ServerHello that answers the second ClientHello has
// message_seq 1 (§4.2.2) and that ClientHello's record sequence number, so
// that a client's replay check does not take it for the HelloVerifyRequest.
func TestDTLSSequenceNumbers(t *testing.T) {
	srv := dtlsServer(t, dotsserver.DTLSLimits{})
	p := newRawPeer(t, "127.0.0.1", srv.Addr)
	p.recSeq = 7
	hvr := p.helloVerify()
	if hvr.msgSeq != 0 || hvr.recSeq != 7 {
		t.Errorf("HelloVerifyRequest: message_seq %d, record seq %d; want 0 and 7", hvr.msgSeq, hvr.recSeq)
	}
	if st := srv.Srv.DTLSStats(); st.Handshakes != 0 || st.Started != 0 || st.HelloVerifySent != 1 {
		t.Errorf("stats %+v: want a HelloVerifyRequest sent and nothing held", st)
	}
	p.hello(hvr.cookie)
	r, ok := p.read(5 * time.Second)
	if !ok || r.hsType != 2 || r.msgSeq != 1 || r.recSeq != 8 {
		t.Fatalf("second ClientHello (record 8): want a ServerHello with message_seq 1 in record 8, got %+v (received %v)", r, ok)
	}
	if st := srv.Srv.DTLSStats(); st.Handshakes != 1 || st.Started != 1 {
		t.Errorf("stats %+v: want one handshake in progress", st)
	}
}

// TestDTLSBadCookie: a ClientHello with a cookie the server did not make
// for it gets a fresh HelloVerifyRequest and no state; the right cookie
// then gets a ServerHello. A cookie is bound to the source: another port
// presenting it gets a HelloVerifyRequest with another cookie.
func TestDTLSBadCookie(t *testing.T) {
	srv := dtlsServer(t, dotsserver.DTLSLimits{})
	p := newRawPeer(t, "127.0.0.1", srv.Addr)
	hvr := p.helloVerify()
	bad := append([]byte(nil), hvr.cookie...)
	bad[0] ^= 0xff
	p.hello(bad)
	if r, ok := p.read(5 * time.Second); !ok || r.hsType != 3 || string(r.cookie) != string(hvr.cookie) {
		t.Fatalf("bad cookie: want the HelloVerifyRequest again, got %+v (received %v)", r, ok)
	}
	if st := srv.Srv.DTLSStats(); st.DroppedBadCookie != 1 || st.Handshakes != 0 {
		t.Errorf("stats %+v: want 1 bad cookie and no handshake held", st)
	}
	p.hello(hvr.cookie)
	if r, ok := p.read(5 * time.Second); !ok || r.hsType != 2 {
		t.Fatalf("right cookie: want a ServerHello, got %+v (received %v)", r, ok)
	}

	q := newRawPeer(t, "127.0.0.1", srv.Addr)
	q.random = p.random
	q.msgSeq = 1
	q.hello(hvr.cookie) // p's cookie, from another port
	r, ok := q.read(5 * time.Second)
	if !ok || r.hsType != 3 || len(r.cookie) == 0 || string(r.cookie) == string(hvr.cookie) {
		t.Fatalf("another source's cookie: want a HelloVerifyRequest with a new cookie, got %+v (received %v)", r, ok)
	}
	if st := srv.Srv.DTLSStats(); st.Handshakes != 1 || st.DroppedBadCookie != 2 {
		t.Errorf("stats %+v: want p's handshake alone and 2 bad cookies", st)
	}
}

// TestDTLSHandshakeDeadline: a peer that answers the cookie and then stops
// loses its handshake at the deadline, and the server stops sending to it.
func TestDTLSHandshakeDeadline(t *testing.T) {
	srv := dtlsServer(t, dotsserver.DTLSLimits{HandshakeTimeout: time.Second})
	p := newRawPeer(t, "127.0.0.1", srv.Addr)
	p.hello(p.helloVerify().cookie)
	if r, ok := p.read(5 * time.Second); !ok || r.hsType != 2 {
		t.Fatalf("want a ServerHello, got %+v (received %v)", r, ok)
	}
	if st := srv.Srv.DTLSStats(); st.Handshakes != 1 {
		t.Fatalf("stats %+v: want one handshake in progress", st)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := srv.Srv.DTLSStats()
		if st.Handshakes == 0 && st.TimedOut == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("10 s after a 1 s deadline: stats %+v, want no handshake in progress and one timed out", st)
		}
	}
	// Drain what was sent before the drop; then silence (pion would resend
	// its flight after 1, 2, 4 ... s while it held the handshake).
	for {
		if _, ok := p.read(200 * time.Millisecond); !ok {
			break
		}
	}
	if r, ok := p.read(2500 * time.Millisecond); ok {
		t.Fatalf("after the deadline the server still sends: %+v", r)
	}
	p.msgSeq, p.recSeq = 0, 0
	p.helloVerify() // the source starts afresh
}

// handshakeStarted runs the cookie exchange from a new source and reports
// whether the server answered the cookie with a ServerHello.
func handshakeStarted(t *testing.T, ip, srv string) bool {
	t.Helper()
	p := newRawPeer(t, ip, srv)
	p.hello(p.helloVerify().cookie)
	r, ok := p.read(time.Second)
	return ok && r.hsType == 2
}

// TestDTLSPrefixCap: handshakes from one /24 are capped; another prefix is
// not affected.
func TestDTLSPrefixCap(t *testing.T) {
	const limit = 4
	srv := dtlsServer(t, dotsserver.DTLSLimits{MaxHandshakesPerPrefix: limit})
	answered := 0
	for i := 1; i <= 10; i++ {
		if handshakeStarted(t, fmt.Sprintf("127.65.1.%d", i), srv.Addr) {
			answered++
		}
	}
	if answered != limit {
		t.Errorf("%d sources of one /24 got a ServerHello, want %d", answered, limit)
	}
	if st := srv.Srv.DTLSStats(); st.Handshakes != limit || st.DroppedPrefixCap != 10-limit || st.HelloVerifySent != 10 {
		t.Errorf("stats %+v: want %d handshakes, %d dropped at the prefix cap, 10 HelloVerifyRequests", st, limit, 10-limit)
	}
	if !handshakeStarted(t, "127.65.2.1", srv.Addr) {
		t.Error("another /24: no ServerHello")
	}
}

// TestDTLSFlood sends ClientHellos, each from a new source address and
// port in 127.64.0.0/16 (loopback, 250 /24s), while a legitimate client
// connects: 20,000 at 2,500 a second, or under the race detector 5,000 at
// 500 a second (a server that cannot keep up loses datagrams in its socket
// buffer, the legitimate client's too, before any cap applies). The server
// must hold no state per flooding source beyond the caps, and the client
// must get in during the flood: the server keeps nothing for a source that
// never returns its cookie.
func TestDTLSFlood(t *testing.T) {
	packets, perSec := 20000, 2500
	if raceDetector {
		packets, perSec = 5000, 500
	}
	const maxHeap = 16 << 20 // heap growth, bytes
	const maxGrowG = 100     // goroutines over the baseline: the legitimate client's, the flood's, the sampler's
	srv := dtlsServer(t, dotsserver.DTLSLimits{})
	hello, err := clientHello(handshake.Random{GMTUnixTime: time.Now()}, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := net.ResolveUDPAddr("udp4", srv.Addr)
	baseG, baseHeap := settle()

	sent, floodDone := flood(t, dst, hello, 64, packets, perSec)

	var peakG, peakHS int
	var mu sync.Mutex
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for {
			select {
			case <-floodDone:
				return
			case <-time.After(20 * time.Millisecond):
			}
			g, hs := runtime.NumGoroutine(), srv.Srv.DTLSStats().Handshakes
			mu.Lock()
			peakG, peakHS = max(peakG, g), max(peakHS, hs)
			mu.Unlock()
		}
	}()

	waitFor(t, 10*time.Second, "the flood does not start", func() bool { return sent.Load() >= int64(packets/10) })
	dialed := make(chan error, 1)
	go func() { dialed <- dialDuring(srv, t, floodDone) }()
	err = <-dialed
	floodRunning := true
	select {
	case <-floodDone:
		floodRunning = false
	default:
	}
	<-floodDone
	<-sampleDone
	st := srv.Srv.DTLSStats()
	_, heap := settle() // what is held, not what awaits collection
	t.Logf("sent %d ClientHellos; goroutines %d at rest, peak %d; heap %d MiB at rest, %d MiB after the flood; peak handshakes %d; %+v",
		sent.Load(), baseG, peakG, baseHeap>>20, heap>>20, peakHS, st)
	if err != nil {
		t.Fatalf("legitimate client: %v", err)
	}
	if !floodRunning {
		t.Errorf("the legitimate client got in only after the flood")
	}
	if peakHS > 1 || st.Started > 3 {
		t.Errorf("peak %d handshakes in progress, %d started: want the legitimate client's alone", peakHS, st.Started)
	}
	if peakG-baseG > maxGrowG {
		t.Errorf("goroutines grew by %d during the flood, want at most %d", peakG-baseG, maxGrowG)
	}
	if grow := int64(heap) - int64(baseHeap); grow > maxHeap {
		t.Errorf("heap grew by %d MiB during the flood, want at most %d", grow>>20, maxHeap>>20)
	}
	if st.HelloVerifySent < uint64(packets/2) {
		t.Errorf("stats %+v: want the flood answered with HelloVerifyRequests", st)
	}
}

// flood sends n copies of pkt to dst, each from a new socket on
// 127.<second>.x.y (250 /24s), at most perSec a second and for 10 s at most.
func flood(t *testing.T, dst *net.UDPAddr, pkt []byte, second byte, n, perSec int) (*atomic.Int64, <-chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var sent atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		start := time.Now()
		for i := 0; i < n && ctx.Err() == nil; i++ {
			if ahead := time.Duration(i)*time.Second/time.Duration(perSec) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
			ip := net.IPv4(127, second, byte(i%250), byte(1+i/250))
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
			if err != nil {
				continue
			}
			if _, err := c.WriteToUDP(pkt, dst); err == nil {
				sent.Add(1)
			}
			c.Close()
		}
	}()
	return &sent, done
}

// dialDuring connects a DOTS client over DTLS, retrying until it succeeds,
// the flood is over and one more try failed, or 30 s passed.
func dialDuring(srv *dotstest.Server, t *testing.T, flood <-chan struct{}) error {
	end := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{srv.Addr}, Certificate: srv.ClientCert(t, "alpha"),
			RootCAs: srv.Roots, Transport: "dtls"})
		cancel()
		if err == nil {
			cl.Close()
			return nil
		}
		select {
		case <-flood:
			return fmt.Errorf("no handshake during the flood: %w", err)
		default:
		}
		if time.Now().After(end) {
			return err
		}
	}
}

// settle collects garbage and returns the goroutines and heap in use.
func settle() (int, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}
