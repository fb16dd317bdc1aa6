package dotsserver_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/levee-dots/levee/dots"
)

// recordingConn is a UDP socket for pion that keeps the datagrams written
// through it.
type recordingConn struct {
	*net.UDPConn
	mu      sync.Mutex
	written [][]byte
}

func (c *recordingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	c.written = append(c.written, slices.Clone(b))
	c.mu.Unlock()
	return c.UDPConn.WriteTo(b, addr)
}

// withCookie returns the first datagram written that is a ClientHello
// with a cookie (message_seq 1).
func (c *recordingConn) withCookie() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.written {
		if len(b) > 25 && b[0] == 22 && b[13] == 1 && b[18] == 1 {
			return b
		}
	}
	return nil
}

// dtlsFrom makes a DTLS session as alpha from local UDP address laddr
// (port 0: any) and returns its socket and connection.
func dtlsFrom(t *testing.T, e *env, laddr *net.UDPAddr) (*recordingConn, *piondtls.Conn, error) {
	t.Helper()
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordingConn{UDPConn: pc}
	raddr, err := net.ResolveUDPAddr("udp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(rc, raddr, piondtls.WithCertificates(e.ClientCert(t, "alpha")), piondtls.WithRootCAs(e.roots),
		piondtls.WithServerName("localhost"), piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(hctx); err != nil {
		dc.Close()
		pc.Close()
		return nil, nil, err
	}
	return rc, dc, nil
}

// getConfig asks for the session configuration over a DTLS connection and
// returns the CoAP session made on it (closing it closes dc).
func getConfig(t *testing.T, dc *piondtls.Conn) *udpClient.Conn {
	t.Helper()
	cc := dtls.Client(dc)
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cc.Get(rctx, "/.well-known/dots/config")
	if err != nil {
		t.Fatalf("GET /config: %v", err)
	}
	if r.Code() != codes.Content {
		t.Fatalf("GET /config: %v, want %v", r.Code(), dots.Content)
	}
	return cc
}

// TestDTLSNewAssociationFromSameAddress: a client that abandoned its DTLS
// session without a close_notify (killed, or the alert was lost) and
// starts a new handshake from the same address and port gets a new
// session once it has returned the cookie (RFC 6347 §4.2.8); the old
// association is abandoned then, not before. A copy of the ClientHello
// that made an association does not end it.
func TestDTLSNewAssociationFromSameAddress(t *testing.T) {
	e := newEnv(t, "", nil)
	rc1, dc1, err := dtlsFrom(t, e, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("first session: %v", err)
	}
	laddr := rc1.LocalAddr().(*net.UDPAddr)

	// A late copy of the ClientHello that made the first association,
	// cookie and all, leaves it as it is.
	hello := rc1.withCookie()
	if hello == nil {
		t.Fatal("no ClientHello with a cookie among the datagrams of the first handshake")
	}
	raddr, _ := net.ResolveUDPAddr("udp", e.addr)
	if _, err := rc1.UDPConn.WriteTo(hello, raddr); err != nil {
		t.Fatal(err)
	}
	cc1 := getConfig(t, dc1)
	if st := e.Srv.DTLSStats(); st.Replaced != 0 {
		t.Fatalf("a copy of the first ClientHello replaced the association: %+v", st)
	}

	// The client goes away without a close_notify: its socket closes
	// under the session, which can then send nothing.
	rc1.UDPConn.Close()
	cc1.Close()

	rc2, dc2, err := dtlsFrom(t, e, laddr)
	if err != nil {
		t.Fatalf("second session from %v, whose first session was not closed: %v; %+v", laddr, err, e.Srv.DTLSStats())
	}
	defer rc2.Close()
	if rc2.LocalAddr().String() != laddr.String() {
		t.Fatalf("second session from %v, want %v", rc2.LocalAddr(), laddr)
	}
	defer getConfig(t, dc2).Close()
	if st := e.Srv.DTLSStats(); st.Replaced != 1 {
		t.Fatalf("DTLS stats %+v, want 1 association replaced", st)
	}
}
