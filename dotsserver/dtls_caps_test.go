package dotsserver_test

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// TestDTLSTotalCap: at MaxHandshakes a cookie-verified ClientHello is
// dropped until a handshake ends, while ClientHellos without a cookie are
// still answered, with no state.
func TestDTLSTotalCap(t *testing.T) {
	srv := dtlsServer(t, dotsserver.DTLSLimits{MaxHandshakes: 2, HandshakeTimeout: 2 * time.Second})
	for _, ip := range []string{"127.67.1.1", "127.67.2.1"} {
		if !handshakeStarted(t, ip, srv.Addr) {
			t.Fatalf("%s: no ServerHello below the cap", ip)
		}
	}
	c := newRawPeer(t, "127.67.3.1", srv.Addr)
	hvr := c.helloVerify() // answered at the cap
	c.hello(hvr.cookie)
	if r, ok := c.read(time.Second); ok {
		t.Fatalf("at the cap: want the cookie-verified ClientHello dropped, got %+v", r)
	}
	if st := srv.Srv.DTLSStats(); st.Handshakes != 2 || st.DroppedTotalCap != 1 || st.HelloVerifySent != 3 {
		t.Fatalf("stats %+v: want 2 handshakes, 1 ClientHello dropped at the cap, 3 HelloVerifyRequests", st)
	}
	waitFor(t, 10*time.Second, "the handshakes at the cap do not time out", func() bool {
		return srv.Srv.DTLSStats().Handshakes == 0
	})
	c.msgSeq-- // the resend of the same ClientHello, as the peer's timer would send it
	c.hello(hvr.cookie)
	if r, ok := c.read(5 * time.Second); !ok || r.hsType != 2 {
		t.Fatalf("below the cap again: want a ServerHello, got %+v (received %v)", r, ok)
	}
}

// TestLibcoapDuringDTLSFlood: OpenSSL's client (HelloVerifyRequest, then
// its ClientHello with the cookie) completes a handshake and a request
// while ClientHellos from 5,000 sources arrive.
func TestLibcoapDuringDTLSFlood(t *testing.T) {
	requireLibcoap(t)
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		o.Limits.DTLS = dotsserver.DTLSLimits{MaxHandshakesPerPrefix: 8}
	})
	hello, err := clientHello(handshake.Random{GMTUnixTime: time.Now()}, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := net.ResolveUDPAddr("udp4", e.addr)
	sent, done := flood(t, dst, hello, 66, 5000, 1000)
	waitFor(t, 10*time.Second, "the flood does not start", func() bool { return sent.Load() >= 2000 })
	t.Cleanup(func() { t.Logf("%+v", e.Srv.DTLSStats()) })
	alpha := e.dev.Clients["alpha"]
	r := coapClient(t, "-m", "get", "-N", "-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath,
		"coaps://"+e.addr+"/.well-known/dots/mitigate/cuid="+alpha.CUID)
	select {
	case <-done:
		t.Errorf("coap-client finished only after the flood")
	default:
	}
	if !strings.HasPrefix(r.code, "2.") && !strings.HasPrefix(r.code, "4.") {
		t.Fatalf("response %s\n%s", r.code, r.log)
	}
	st := e.Srv.DTLSStats()
	t.Logf("coap-client got %s during the flood; %+v", r.code, st)
	if st.Completed == 0 || st.HelloVerifySent < 2000 || st.Started > 3 {
		t.Errorf("stats %+v: want a completed handshake, the flood answered statelessly, nothing started for it", st)
	}
}

// TestLibcoapCookieExchange: libcoap's client built on OpenSSL and on
// GnuTLS takes the stateless HelloVerifyRequest, returns the cookie and
// completes the handshake and a request.
func TestLibcoapCookieExchange(t *testing.T) {
	requireLibcoap(t)
	e := newEnv(t, "127.0.0.1:0", nil)
	alpha := e.dev.Clients["alpha"]
	for i, bin := range []string{"coap-client-openssl", "coap-client-gnutls"} {
		t.Run(bin, func(t *testing.T) {
			if _, err := exec.LookPath(bin); err != nil {
				t.Fatalf("%s not installed (apt-get install libcoap3-bin): %v", bin, err)
			}
			r := runCoapClient(t, bin, "-m", "get", "-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath,
				"coaps://"+e.addr+"/.well-known/dots/mitigate/cuid="+alpha.CUID)
			if !strings.HasPrefix(r.code, "2.") && !strings.HasPrefix(r.code, "4.") {
				t.Fatalf("response %s\n%s", r.code, r.log)
			}
			st := e.Srv.DTLSStats()
			if st.HelloVerifySent < uint64(i+1) || st.Completed != uint64(i+1) || st.DroppedBadCookie != 0 {
				t.Errorf("stats %+v: want %d HelloVerifyRequests answered and handshakes completed, no bad cookie", st, i+1)
			}
		})
	}
}

// TestDTLSReport: the server logs the growth of the DTLS counters in each
// interval in which something happened, WARN when a cap bit, and nothing
// in a quiet one.
func TestDTLSReport(t *testing.T) {
	defer dotsserver.SetDTLSReportInterval(dotsserver.SetDTLSReportInterval(200 * time.Millisecond))
	var logs logBuffer
	srv := dotstest.Start(t, dotstest.Options{Mutate: func(o *dotsserver.Options) {
		o.Logger = logs.logger()
		o.Limits.DTLS = dotsserver.DTLSLimits{MaxHandshakesPerPrefix: 1}
	}})
	time.Sleep(500 * time.Millisecond)
	if l := logs.lines("dtls handshakes"); len(l) != 0 {
		t.Fatalf("quiet intervals logged: %q", l)
	}
	handshakeStarted(t, "127.68.1.1", srv.Addr)
	handshakeStarted(t, "127.68.1.2", srv.Addr) // over the prefix cap
	waitFor(t, 5*time.Second, "no report", func() bool { return len(logs.lines("dtls handshakes")) > 0 })
	l := logs.lines("dtls handshakes")[0]
	for _, want := range []string{"level=WARN", "hello-verify-sent=2", "started=1", "dropped-prefix-cap=1", "in-progress=1"} {
		if !strings.Contains(l, want) {
			t.Errorf("report %q: want %s", l, want)
		}
	}
}
