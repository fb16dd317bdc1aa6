package dotsserver_test

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	tcpCoder "github.com/plgd-dev/go-coap/v3/tcp/coder"
	udpCoder "github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

var teardownEnv *env

// teardownServer is the one server a fuzz process opens its sessions to;
// its clock stands still, so no session ends by itself.
func teardownServer(f *testing.F) *env {
	if teardownEnv == nil {
		clock := dotstest.NewClock()
		teardownEnv = newEnv(f, "127.0.0.1:0", func(o *dotsserver.Options) {
			clock.Install(o)
			o.RateLimit = dotsserver.RateLimit{RequestsPerSecond: dotsserver.MaxRequestsPerSecond, Burst: dotsserver.MaxRequestBurst}
		})
		f.Cleanup(func() { teardownEnv = nil })
	}
	return teardownEnv
}

// trySend writes m, ignoring errors: the server may have ended the session.
func trySend(rc *rawConn, m message.Message) {
	var b []byte
	var err error
	if rc.dc != nil {
		m.Type, m.MessageID = message.Confirmable, rc.mid.Add(1)
		if b, err = encode(udpCoder.DefaultCoder, m); err == nil {
			_, _ = rc.dc.Write(b)
		}
		return
	}
	if b, err = encode(tcpCoder.DefaultCoder, m); err == nil {
		_, _ = rc.tc.Write(b)
	}
}

// teardownOp sends one request chosen by op; arg picks its mid or size.
func teardownOp(rc *rawConn, op, arg byte) {
	body := encodeFor(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope("203.0.113.7/32", 3600)}}})
	mid := uint32(arg%4) + 1
	switch op % 7 {
	case 0: // a mitigation request
		trySend(rc, rc.mitigatePut(rc.token(), mid, nil, body))
	case 1: // an Observe registration on all the client's requests
		trySend(rc, rc.get(rc.token(), 0, "mitigate", "cuid="+rc.cuid))
	case 2: // an Observe registration on one request
		trySend(rc, rc.get(rc.token(), 0, "mitigate", "cuid="+rc.cuid, fmt.Sprintf("mid=%d", mid)))
	case 3: // the first block of a Block1 transfer that never ends
		trySend(rc, rc.mitigatePut(rc.token(), mid, []message.Option{blockOpt(message.Block1, 0, true, 0)}, body[:min(16, len(body))]))
	case 4:
		trySend(rc, rc.get(rc.token(), -1, "config"))
	case 5:
		trySend(rc, message.Message{Code: codes.DELETE, Token: rc.token(), Options: rc.mitigatePut(nil, mid, nil, nil).Options[:5]})
	case 6: // a heartbeat
		trySend(rc, message.Message{Code: codes.PUT, Token: rc.token(), Options: message.Options{
			{ID: message.URIPath, Value: []byte(".well-known")}, {ID: message.URIPath, Value: []byte("dots")},
			{ID: message.URIPath, Value: []byte("hb")}, uintOpt(message.ContentFormat, dots.ContentFormat)},
			Payload: encodeFor(&dots.Message{Heartbeat: &dots.Heartbeat{PeerHBStatus: dots.Ptr(true)}})})
	}
}

func encodeFor(m *dots.Message) []byte {
	b, err := dots.Encode(m)
	if err != nil {
		panic(err)
	}
	return b
}

// teardownEnd ends a session the way end says.
func teardownEnd(rc *rawConn, end byte, junk []byte) {
	if rc.dc != nil {
		if end%2 == 1 {
			_, _ = rc.dc.Write(junk) // an undecodable CoAP message in a valid record
		}
		_ = rc.dc.Close() // close_notify
		return
	}
	tcp := rc.tc.NetConn().(*net.TCPConn)
	switch end % 8 {
	case 0:
		_ = rc.tc.Close()
	case 1: // reset
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
	case 2: // half-close, then close
		_ = rc.tc.CloseWrite()
		time.Sleep(10 * time.Millisecond)
		_ = rc.tc.Close()
	case 3: // bytes that are no CoAP frame
		_, _ = rc.tc.Write(junk)
		_ = rc.tc.Close()
	case 4: // Abort (RFC 8323 §5.6)
		trySend(rc, message.Message{Code: codes.Abort})
		_ = rc.tc.Close()
	case 5: // Release (RFC 8323 §5.5)
		trySend(rc, message.Message{Code: codes.Release})
		_ = rc.tc.Close()
	case 6: // a frame cut short: the header announces more than comes
		_, _ = rc.tc.Write([]byte{0xd1, 0xff, 0x02})
		_ = rc.tc.Close()
	case 7: // plaintext garbage under TLS: the record layer fails
		_, _ = tcp.Write(append([]byte{0x17, 0x03, 0x03, 0x00, 0x05}, junk...))
		_ = tcp.Close()
	}
}

// FuzzSessionTeardown opens one to three sessions to a real server (TLS,
// or DTLS when the first byte is odd), sends requests chosen by the input
// (mitigation requests, Observe registrations, Block1 transfers left
// open, heartbeats...) and ends each session one of the ways a peer or a
// network can: close, reset, half-close, junk, Abort, Release, a cut frame,
// a broken TLS record, DTLS close_notify. Whatever the order, the server
// must then hold nothing for them: no connection, no session counted
// against the client, no Observe registration, and no goroutines beyond
// the ones it had.
func FuzzSessionTeardown(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 1, 0, 0, 1, 0},
		{0, 2, 0, 1, 1, 1, 2, 3, 0},
		{2, 3, 1, 1, 0, 2, 2, 1, 3},
		{4, 1, 0, 3, 4, 4, 5, 6, 6},
		{1, 2, 0, 1, 1, 1, 1},
		{5, 3, 0, 1, 2, 2, 1, 0, 7, 3, 9, 9},
		{3, 6, 3, 0, 3, 1, 0, 0, 5, 0, 6, 1, 2},
	} {
		f.Add(seed, []byte("junk"))
	}
	e := teardownServer(f)
	baseline := -1
	f.Fuzz(func(t *testing.T, script, junk []byte) {
		if len(script) < 2 || len(script) > 64 || len(junk) > 256 {
			t.Skip("outside the fuzzed space")
		}
		if baseline < 0 {
			baseline = runtime.NumGoroutine()
		}
		transport := "tls"
		if script[0]%2 == 1 {
			transport = "dtls"
		}
		n := int(script[1]%3) + 1
		sess := make([]*rawConn, n)
		for i := range sess {
			sess[i] = dialRaw(t, e, "alpha", transport)
		}
		ops := script[2:]
		for i := 0; i+1 < len(ops); i += 2 {
			teardownOp(sess[int(ops[i]>>4)%n], ops[i]&0x0f, ops[i+1])
		}
		for i, rc := range sess {
			end := byte(i)
			if i < len(ops) {
				end = ops[len(ops)-1-i]
			}
			teardownEnd(rc, end, junk)
		}
		var conns, sessions, observers, observed, g int
		// 5 s: the fuzzing engine takes an input running 10 s for a hang.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			conns, sessions, observers, observed = e.Srv.SessionState()
			g = runtime.NumGoroutine()
			if conns == 0 && sessions == 0 && observers == 0 && observed == 0 && g <= baseline+2 {
				return
			}
			if time.Now().After(deadline) {
				break
			}
		}
		t.Fatalf("5 s after the sessions ended the server holds %d connections, %d sessions, %d Observe registrations on %d connections; %d goroutines, %d before",
			conns, sessions, observers, observed, g, baseline)
	})
}
