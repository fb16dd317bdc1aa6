package dotsserver_test

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dotsserver"
)

// idleConns opens n TCP connections to addr that never start TLS.
func idleConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	out := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// closedWithin reports whether the server closed c within d (a read ends
// in EOF or a reset rather than the read deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestTLSHandshakeDeadline: TCP connections that never start TLS are
// closed once Limits.TLSHandshakeTimeout has passed; a client that does
// its handshake is served.
func TestTLSHandshakeDeadline(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.Limits.TLSHandshakeTimeout = 300 * time.Millisecond })
	idle := idleConns(t, e.addr, 20)
	rc := dialRaw(t, e, "alpha", "tls")
	if r := rc.roundTrip(t, rc.get(rc.token(), -1, "mitigate", "cuid="+rc.cuid)); r.Code != codes.NotFound {
		t.Fatalf("legitimate client: %v %q", r.Code, diagOf(r))
	}
	for i, c := range idle {
		// Generous: the deadline is 300 ms.
		if !closedWithin(c, 10*time.Second) {
			t.Fatalf("idle connection %d still open 10 s after its handshake deadline", i)
		}
	}
}

// TestUnauthenticatedConnLimit: at most Limits.MaxUnauthenticatedConns
// connections may be in their handshake; beyond, the oldest is closed, so
// idle connections cannot keep a legitimate client out.
func TestUnauthenticatedConnLimit(t *testing.T) {
	const limit = 5
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		o.Limits.MaxUnauthenticatedConns = limit
		o.Limits.TLSHandshakeTimeout = time.Minute // only the bound closes them here
	})
	idle := idleConns(t, e.addr, 4*limit)
	for i, c := range idle[:3*limit] {
		if !closedWithin(c, 10*time.Second) {
			t.Fatalf("idle connection %d (of the oldest) still open with %d newer ones", i, 4*limit-i-1)
		}
	}
	for i, c := range idle[3*limit:] {
		if closedWithin(c, 200*time.Millisecond) {
			t.Fatalf("idle connection %d (of the %d newest) closed", 3*limit+i, limit)
		}
	}
	// A legitimate client gets through while idle connections fill the bound.
	for _, transport := range []string{"tls", "dtls"} {
		rc := dialRaw(t, e, "alpha", transport)
		if r := rc.roundTrip(t, rc.get(rc.token(), -1, "mitigate", "cuid="+rc.cuid)); r.Code != codes.NotFound {
			t.Fatalf("legitimate %s client: %v %q", transport, r.Code, diagOf(r))
		}
	}
}
