package dotsserver

import (
	"time"

	tcpClient "github.com/plgd-dev/go-coap/v3/tcp/client"
)

// Over TLS a request refused by the client's rate limit is always answered
// 4.29 (TCP has no retransmission that would recover a dropped one), so a
// client that sends as fast as it can would be served 4.29 as fast as it
// can send: tens of thousands of answers a second, each encoded, encrypted
// and written with the cores that serve the other clients. Instead, once a
// session has been answered 4.29, the server reads nothing more from it
// until the client's bucket has a token again, at most tcpHoldMax: the
// session's further requests wait in its TCP buffers, and TCP's flow
// control slows the client. Refusals are then at most one per hold and
// session (bounded by the sessions per client), other sessions and other
// clients are read as before, and a client that heeds Max-Age (RFC 8516)
// never meets the hold. Heartbeats behind a held request are read at the
// end of the hold.

// tcpHoldMax bounds a hold: a heartbeat queued behind a refused request
// waits no longer than this, whatever the client's rate.
const tcpHoldMax = 100 * time.Millisecond

// holdTCP waits, in the session's reading goroutine, until the client
// refused th may have a token again, at most tcpHoldMax, or until the
// session ends.
func holdTCP(cc *tcpClient.Conn, th *throttled) {
	d := min(th.wait, tcpHoldMax)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cc.Context().Done():
	}
}
