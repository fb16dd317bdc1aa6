package dotsclient

import (
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/mux"
)

// datagramConn is the client's connected UDP socket as pion sees it (a
// net.PacketConn): it shows the handshake to hsRTT and, with a copier,
// writes each datagram more than once.
type datagramConn struct {
	net.Conn
	rtt  *hsRTT
	copy *copier // nil: each datagram once
}

func (p datagramConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := p.Conn.Read(b)
	if err == nil && p.rtt != nil {
		p.rtt.read(b[:n])
	}
	return n, p.Conn.RemoteAddr(), err
}

func (p datagramConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	if p.rtt != nil {
		p.rtt.wrote(b)
	}
	n, err := p.Conn.Write(b)
	if err != nil || p.copy == nil {
		return n, err
	}
	for range p.copy.extra() {
		if _, err := p.Conn.Write(b); err != nil {
			break // the datagram itself went out; a copy is a bonus
		}
	}
	return n, nil
}

// dtlsFlightInterval is the handshake's initial retransmission timer: pion's
// default, 1 s as RFC 6347 §4.2.4.1 asks, or HeavyLossFlightInterval.
func (c *Client) dtlsFlightInterval() time.Duration {
	if c.cfg.HeavyLoss {
		return HeavyLossFlightInterval
	}
	return time.Second
}

// datagrams wraps a DTLS attempt's UDP socket for pion.
func (c *Client) datagrams(raw net.Conn) datagramConn {
	pc := datagramConn{Conn: raw, rtt: newHSRTT(time.Now, c.dtlsFlightInterval())}
	if c.cfg.HeavyLoss {
		pc.copy = newCopier(time.Now, HeavyLossCopies, heavyLossRate, heavyLossBudget)
	}
	return pc
}

// seedRTT starts the session's RTT estimate from the samples its DTLS
// handshake gave (hsrtt.go), if it has none yet.
func (c *Client) seedRTT(conn mux.Conn) {
	v, _ := c.hsRTT.Load(conn)
	samples, _ := v.([]time.Duration)
	if c.srtt.Load() != 0 {
		return
	}
	for _, r := range samples {
		c.sampleRTT(max(r, time.Microsecond)) // 0 would mean no estimate
	}
}
