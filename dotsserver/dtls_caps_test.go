package dotsserver_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"

	"github.com/levee-dots/levee/dotsserver"
)

// TestDTLSTotalCap: at MaxHandshakes the oldest unanswered handshake makes
// room for a new one, a peer that answered the cookie keeps its place, and
// when every peer has answered a new ClientHello is dropped.
func TestDTLSTotalCap(t *testing.T) {
	srv := dtlsServer(t, dotsserver.DTLSLimits{MaxHandshakes: 2})
	a := newRawPeer(t, "127.67.1.1", srv.Addr)
	a.hello(a.helloVerify().cookie)
	if r, ok := a.read(5 * time.Second); !ok || r.hsType != 2 {
		t.Fatalf("want a ServerHello, got %+v (received %v)", r, ok)
	}
	for i, ip := range []string{"127.67.2.1", "127.67.3.1", "127.67.4.1"} {
		newRawPeer(t, ip, srv.Addr).helloVerify()
		st := srv.Srv.DTLSStats()
		if st.Handshakes != 2 || st.Unanswered != 1 || st.Evicted != uint64(i) {
			t.Fatalf("after unanswered peer %d: stats %+v, want 2 handshakes, 1 unanswered, %d evicted", i+1, st, i)
		}
	}
	b := newRawPeer(t, "127.67.4.1", srv.Addr) // the same address, another port: another source
	b.hello(nil)
	if _, ok := b.read(time.Second); !ok {
		t.Fatal("no HelloVerifyRequest")
	}
	c := newRawPeer(t, "127.67.5.1", srv.Addr)
	c.hello(nil) // evicts b, the oldest unanswered
	hvr, ok := c.read(time.Second)
	if !ok {
		t.Fatal("no HelloVerifyRequest")
	}
	c.hello(hvr.cookie)
	if r, ok := c.read(5 * time.Second); !ok || r.hsType != 2 {
		t.Fatalf("want a ServerHello, got %+v (received %v)", r, ok)
	}
	d := newRawPeer(t, "127.67.6.1", srv.Addr)
	d.hello(nil)
	if r, ok := d.read(time.Second); ok {
		t.Fatalf("every handshake answered: want the ClientHello dropped, got %+v", r)
	}
	if st := srv.Srv.DTLSStats(); st.Handshakes != 2 || st.Unanswered != 0 || st.DroppedTotalCap != 1 {
		t.Fatalf("stats %+v: want 2 answered handshakes and 1 ClientHello dropped", st)
	}
}

// TestLibcoapDuringDTLSFlood: OpenSSL's client (HelloVerifyRequest, then
// its ClientHello with the cookie) completes a handshake and a request
// while ClientHellos from 5,000 sources arrive.
func TestLibcoapDuringDTLSFlood(t *testing.T) {
	requireLibcoap(t)
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		o.Limits.DTLS = dotsserver.DTLSLimits{MaxHandshakes: 512, MaxHandshakesPerPrefix: 8}
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
	if st.Completed == 0 || st.Evicted+st.DroppedPrefixCap == 0 {
		t.Errorf("stats %+v: want a completed handshake and the caps to bite", st)
	}
}
