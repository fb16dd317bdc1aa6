package dotsclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/tcp"
	tcpClient "github.com/plgd-dev/go-coap/v3/tcp/client"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
)

// testEnv is an in-process server with a development PKI.
type testEnv struct {
	*dotstest.Server
	dev   *pki.DevPKI
	roots *x509.CertPool
	addr  string // 127.0.0.1:PORT, DTLS on UDP and TLS on TCP
}

func newTestEnv(t *testing.T, mutate func(*dotsserver.Options)) *testEnv {
	t.Helper()
	s := dotstest.Start(t, dotstest.Options{Mutate: mutate})
	return &testEnv{Server: s, dev: s.Dev, roots: s.Roots, addr: s.Addr}
}

// config returns a client configuration for the named client of the dev PKI.
func (e *testEnv) config(t *testing.T, name string, servers ...string) Config {
	t.Helper()
	return Config{Servers: servers, Certificate: e.ClientCert(t, name), RootCAs: e.roots}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// udpBlockedFront is 127.0.0.1:P where UDP port P swallows every datagram
// (a firewall dropping UDP) and TCP port P forwards to the server's TCP port.
type udpBlockedFront struct {
	addr      string
	datagrams atomic.Int64 // datagrams swallowed
	proxied   atomic.Int64 // TCP connections forwarded
}

func newUDPBlockedFront(t *testing.T, backend string) *udpBlockedFront {
	t.Helper()
	ln, pc := dotstest.ListenSamePort(t)
	f := &udpBlockedFront{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false // closed
		}
		conns = append(conns, c)
		return true
	}
	conns = []net.Conn{}
	wg.Add(2)
	go func() { // the black hole
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			f.datagrams.Add(1)
		}
	}()
	go func() { // the TCP proxy
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", backend)
			if err != nil {
				in.Close()
				continue
			}
			if !track(in) || !track(out) {
				in.Close()
				out.Close()
				return
			}
			f.proxied.Add(1)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	return f
}

func TestFallbackToTLSWhenUDPBlocked(t *testing.T) {
	e := newTestEnv(t, nil)
	front := newUDPBlockedFront(t, e.addr)
	cfg := e.config(t, "alpha", front.addr)
	cfg.AttemptDelay = 100 * time.Millisecond
	start := time.Now()
	c, err := Dial(timeout(t, 10*time.Second), cfg)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("dial with UDP blocked: %v", err)
	}
	defer c.Close()
	if c.Transport() != "tls" {
		t.Fatalf("transport %q, want tls", c.Transport())
	}
	if c.Remote() != front.addr {
		t.Fatalf("remote %q, want %q", c.Remote(), front.addr)
	}
	if elapsed > time.Second {
		t.Fatalf("fallback to TLS took %s, want about the attempt delay (100 ms), at most 1 s", elapsed)
	}
	if front.datagrams.Load() == 0 {
		t.Fatal("DTLS was not tried first: the black hole received no datagram")
	}
	if front.proxied.Load() == 0 {
		t.Fatal("no TCP connection went through the front")
	}
	t.Logf("fell back to TLS after %s (%d datagrams swallowed)", elapsed.Round(time.Millisecond), front.datagrams.Load())

	r, err := c.Mitigate(timeout(t, 5*time.Second), 1, dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)})
	if err != nil || r.Code != dots.Created {
		t.Fatalf("mitigation over the TLS fallback: %v %+v", err, r)
	}
	r, err = c.Status(timeout(t, 5*time.Second), dots.Ptr[uint32](1), "")
	if err != nil || r.Code != dots.Content || *r.Body.MitigationScope.Scope[0].MID != 1 {
		t.Fatalf("status over the TLS fallback: %v %+v", err, r)
	}
}

func TestDTLSOnlyFailsWhenUDPBlocked(t *testing.T) {
	e := newTestEnv(t, nil)
	front := newUDPBlockedFront(t, e.addr)
	cfg := e.config(t, "alpha", front.addr)
	cfg.Transport = "dtls"
	const deadline = 700 * time.Millisecond
	start := time.Now()
	c, err := Dial(timeout(t, deadline), cfg)
	elapsed := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatalf("DTLS-only dial through a UDP black hole succeeded over %s", c.Transport())
	}
	if elapsed > deadline+500*time.Millisecond {
		t.Fatalf("dial gave up after %s, want about the context deadline %s", elapsed, deadline)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap context.DeadlineExceeded", err)
	}
	msg := err.Error()
	for _, want := range []string{"connecting", "deadline exceeded", "dtls " + front.addr} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "<nil>") {
		t.Errorf("error %q contains <nil>", msg)
	}
	if front.proxied.Load() != 0 {
		t.Fatal("transport dtls tried TCP")
	}
	t.Logf("error: %v", err)
}

func TestAutoPrefersDTLS(t *testing.T) {
	e := newTestEnv(t, nil)
	cfg := e.config(t, "alpha", e.addr)
	// Both transports answer; UDP is tried first, and TLS only starts after
	// the attempt delay (generous here so a loaded -race run cannot let a
	// slow DTLS handshake lose the race).
	cfg.AttemptDelay = 500 * time.Millisecond
	c, err := Dial(timeout(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Transport() != "dtls" {
		t.Fatalf("transport %q, want dtls (UDP preferred)", c.Transport())
	}
	r, err := c.GetConfig(timeout(t, 5*time.Second), nil)
	if err != nil || r.Code != dots.Content {
		t.Fatalf("GET /config over DTLS: %v %+v", err, r)
	}
}

func TestDialErrors(t *testing.T) {
	e := newTestEnv(t, nil)
	// Nothing listens on the TCP port of a bound-and-closed listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cfg := e.config(t, "alpha", closed)
	cfg.Transport = "tls"
	_, err = Dial(timeout(t, 5*time.Second), cfg)
	if err == nil || !strings.Contains(err.Error(), "no session could be established") || !strings.Contains(err.Error(), "tls "+closed) {
		t.Fatalf("TLS to a closed port: %v", err)
	}
	if _, err := Dial(timeout(t, time.Second), Config{Servers: []string{e.addr}}); err == nil || !strings.Contains(err.Error(), "certificate is required") {
		t.Fatalf("dial without certificate: %v", err)
	}
}

func TestCandidatesOrder(t *testing.T) {
	ctx := timeout(t, 5*time.Second)
	// Literal addresses, IPv4 first in the configuration: the order is
	// still UDP/IPv6, UDP/IPv4, TCP/IPv6, TCP/IPv4.
	got, err := candidates(ctx, Config{Servers: []string{"127.0.0.1:4646", "[::1]:4647"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []candidate{
		{"dtls", "[::1]:4647", "::1"},
		{"dtls", "127.0.0.1:4646", "127.0.0.1"},
		{"tls", "[::1]:4647", "::1"},
		{"tls", "127.0.0.1:4646", "127.0.0.1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates\n got %v\nwant %v", got, want)
	}

	// A name: each address of it, ServerName the name.
	got, err = candidates(ctx, Config{Servers: []string{"localhost:4646"}})
	if err != nil {
		t.Fatal(err)
	}
	has6 := false
	for _, c := range got {
		if strings.HasPrefix(c.addr, "[::1]") {
			has6 = true
		}
	}
	want = nil
	if has6 {
		want = append(want, candidate{"dtls", "[::1]:4646", "localhost"})
	}
	want = append(want, candidate{"dtls", "127.0.0.1:4646", "localhost"})
	if has6 {
		want = append(want, candidate{"tls", "[::1]:4646", "localhost"})
	}
	want = append(want, candidate{"tls", "127.0.0.1:4646", "localhost"})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("candidates for localhost:4646\n got %v\nwant %v", got, want)
	}
	if !has6 {
		t.Log("localhost does not resolve to ::1 here: IPv6 part of the name check skipped (covered by the literal addresses)")
	}

	// Transport restriction and ServerName override.
	got, err = candidates(ctx, Config{Servers: []string{"127.0.0.1:4646", "[::1]:4646"}, Transport: "tls", ServerName: "dots.example"})
	if err != nil {
		t.Fatal(err)
	}
	want = []candidate{{"tls", "[::1]:4646", "dots.example"}, {"tls", "127.0.0.1:4646", "dots.example"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tls only\n got %v\nwant %v", got, want)
	}
	got, err = candidates(ctx, Config{Servers: []string{"127.0.0.1:4646"}, Transport: "dtls"})
	if err != nil || !reflect.DeepEqual(got, []candidate{{"dtls", "127.0.0.1:4646", "127.0.0.1"}}) {
		t.Fatalf("dtls only: %v %v", got, err)
	}

	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no server address"},
		{Config{Servers: []string{"127.0.0.1"}}, `server address "127.0.0.1"`},
		{Config{Servers: []string{"127.0.0.1:4646"}, Transport: "quic"}, `no candidate address for transport "quic"`},
	} {
		if _, err := candidates(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("candidates(%+v): %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

func waitHB(t *testing.T, got <-chan bool) bool {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("OnHeartbeat was not called: no heartbeat from the server")
	}
	return false
}

func TestServerHeartbeatReachesClient(t *testing.T) {
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			clk := dotstest.NewClock()
			e := newTestEnv(t, clk.Install)
			got := make(chan bool, 8)
			cfg := e.config(t, "alpha", e.addr)
			cfg.Transport = transport
			cfg.OnHeartbeat = func(status bool) { got <- status }
			c, err := Dial(timeout(t, 10*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !c.LastServerHeartbeat().IsZero() {
				t.Fatal("LastServerHeartbeat set before any heartbeat")
			}
			// The server learns who the session belongs to on the first request.
			if r, err := c.GetConfig(timeout(t, 5*time.Second), nil); err != nil || r.Code != dots.Content {
				t.Fatalf("GET /config: %v %+v", err, r)
			}
			clk.Advance(30 * time.Second) // default heartbeat-interval
			if waitHB(t, got) {
				t.Fatal("peer-hb-status true before the client sent a heartbeat")
			}
			if c.LastServerHeartbeat().IsZero() {
				t.Fatal("LastServerHeartbeat not recorded")
			}
			r, err := c.Heartbeat(timeout(t, 5*time.Second), true)
			if err != nil || r.Code != dots.Changed {
				t.Fatalf("client heartbeat: %v %+v", err, r)
			}
			clk.Advance(30 * time.Second)
			for !waitHB(t, got) {
				// a heartbeat of an earlier tick may still be in flight
			}
		})
	}
}

// TestHeartbeatAnswered plays a minimal CoAP-over-TLS server that sends the
// client a heartbeat and checks the answer code itself.
func TestHeartbeatAnswered(t *testing.T) {
	e := newTestEnv(t, nil)
	srvCert, _, err := pki.LoadKeyPair(e.dev.ServerCert, e.dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := coapnet.NewTLSListener("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: e.roots, NextProtos: []string{"coap"}})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code codes.Code
		body string
		err  error
	}
	answers := make(chan answer, 4)
	ask := func(cc *tcpClient.Conn, code codes.Code, path string, body []byte) answer {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var req *pool.Message
		var err error
		if code == codes.PUT {
			req, err = cc.NewPutRequest(ctx, path, message.MediaType(dots.ContentFormat), bytes.NewReader(body))
		} else {
			req, err = cc.NewGetRequest(ctx, path)
		}
		if err != nil {
			return answer{err: err}
		}
		defer cc.ReleaseMessage(req)
		r, err := cc.Do(req)
		if err != nil {
			return answer{err: err}
		}
		defer cc.ReleaseMessage(r)
		b, _ := r.ReadBody()
		return answer{code: r.Code(), body: string(b)}
	}
	srv := tcp.NewServer(options.WithOnNewConn(func(cc *tcpClient.Conn) {
		go func() {
			hb := dots.MustEncode(&dots.Message{Heartbeat: &dots.Heartbeat{PeerHBStatus: dots.Ptr(true)}})
			answers <- ask(cc, codes.PUT, "/.well-known/dots/hb", hb)
			answers <- ask(cc, codes.GET, "/.well-known/dots/mitigate", nil)
		}()
	}))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); ln.Close() })

	got := make(chan bool, 2)
	cfg := e.config(t, "alpha", ln.Addr().String())
	cfg.Transport = "tls"
	cfg.OnHeartbeat = func(status bool) { got <- status }
	c, err := Dial(timeout(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wait := func() answer {
		select {
		case a := <-answers:
			return a
		case <-time.After(5 * time.Second):
			t.Fatal("no answer from the client")
		}
		return answer{}
	}
	if a := wait(); a.err != nil || a.code != codes.Changed {
		t.Fatalf("heartbeat to the client: %v, code %v; want 2.04", a.err, a.code)
	}
	if !waitHB(t, got) {
		t.Fatal("OnHeartbeat got peer-hb-status false, the server sent true")
	}
	if a := wait(); a.err != nil || a.code != codes.NotFound || a.body == "" {
		t.Fatalf("other request to the client: %v, code %v, body %q; want 4.04 with a diagnostic", a.err, a.code, a.body)
	}
}
