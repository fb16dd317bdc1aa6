package dotsserver_test

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
)

// TestRateLimitTLSHold: over TLS a client that sends requests back to back
// past its limit is answered 4.29 for each refused one, but after a 4.29
// its session is read again only once a token is available: the refusals
// are no more than the requests admitted meanwhile, instead of one for
// every request sent. Its heartbeats are still answered 2.04, and another
// client is served during the flood.
func TestRateLimitTLSHold(t *testing.T) {
	const rate, sent = 20, 40
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		o.RateLimit = dotsserver.RateLimit{RequestsPerSecond: 1000, Burst: 1000}
		o.Domains[0].RateLimit = &dotsserver.RateLimit{RequestsPerSecond: rate, Burst: 1}
	})
	beta := e.client(t, "beta", "tls")
	for _, tc := range []struct {
		name      string
		heartbeat bool // a heartbeat after the requests
	}{
		{"requests", false},
		{"requests then a heartbeat", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alpha := dialRaw(t, e, "alpha", "tls")
			var ms []message.Message
			for range sent {
				ms = append(ms, alpha.get(alpha.token(), -1, "mitigate", "cuid="+alpha.cuid))
			}
			if tc.heartbeat {
				ms = append(ms, alpha.heartbeat(alpha.token()))
			}
			got := alpha.allAnswers(t, ms...)
			var refused, admitted int
			for _, m := range ms[:sent] {
				switch c, ok := got[string(m.Token)]; {
				case !ok:
					t.Fatalf("request %x unanswered", m.Token)
				case c == codes.TooManyRequests:
					refused++
				default:
					admitted++
				}
			}
			t.Logf("%d refused, %d admitted", refused, admitted)
			if refused == 0 {
				t.Fatalf("%d requests back to back at %d/s, bursts of 1: none refused", sent, rate)
			}
			if refused > 2*admitted+2 {
				t.Fatalf("%d refused and %d admitted of %d requests sent back to back: the session was read on while the client had no token", refused, admitted, sent)
			}
			if tc.heartbeat {
				if c := got[string(ms[sent].Token)]; c != codes.Changed {
					t.Fatalf("heartbeat behind the refused requests: %v, want 2.04", c)
				}
			}
			expect(t, dots.NotFound)(beta.Status(ctx(t), nil, ""))
		})
	}
}

// allAnswers sends each message and returns the codes of their answers by
// token, once every one is answered (over TLS requests admitted are
// answered by the handlers, refused ones at once: not in order).
func (rc *rawConn) allAnswers(t *testing.T, ms ...message.Message) map[string]codes.Code {
	t.Helper()
	want := map[string]bool{}
	for _, m := range ms {
		want[string(m.Token)] = true
		rc.send(m)
	}
	got := map[string]codes.Code{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) {
		m, err := rc.read(deadline)
		if err != nil {
			t.Fatalf("%d of %d requests answered: %v", len(got), len(ms), err)
		}
		if m.Code == codes.PUT { // the server's heartbeat
			rc.send(message.Message{Code: codes.Changed, Token: m.Token, Type: message.Acknowledgement})
			continue
		}
		if want[string(m.Token)] && m.Code >= codes.Created && m.Code < codes.CSM {
			got[string(m.Token)] = m.Code
		}
	}
	return got
}
