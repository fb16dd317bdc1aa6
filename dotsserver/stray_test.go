package dotsserver_test

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// A message with a response code that answers none of the server's
// requests is rejected, never answered with a response (RFC 7252 §5.3.2,
// §4.2, §4.3): a Confirmable one with a Reset carrying its Message ID, a
// Non-confirmable one or an Acknowledgement silently, and over TLS
// silently. A server that answered it with 4.04 would ping-pong without
// end with a client that answers unexpected responses the same way.
func TestStrayResponseRejected(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	for _, tc := range []struct {
		name      string
		transport string
		typ       message.Type
		code      codes.Code
		reset     bool // a Reset is the one answer
	}{
		{"dtls CON 4.04", "dtls", message.Confirmable, codes.NotFound, true},
		{"dtls CON 2.05", "dtls", message.Confirmable, codes.Content, true},
		{"dtls NON 4.04", "dtls", message.NonConfirmable, codes.NotFound, false},
		{"dtls NON 2.04", "dtls", message.NonConfirmable, codes.Changed, false},
		{"dtls ACK 4.04", "dtls", message.Acknowledgement, codes.NotFound, false},
		{"tls 4.04", "tls", 0, codes.NotFound, false},
		{"tls 2.05", "tls", 0, codes.Content, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, e, "alpha", tc.transport)
			// The session is known to the server after its first request.
			rc.roundTrip(t, rc.get(rc.token(), -1, "mitigate", "cuid="+rc.cuid))
			stray := rc.token()
			rc.send(message.Message{Code: tc.code, Type: tc.typ, Token: stray, Payload: []byte("stray")})
			strayMID := rc.mid.Load()
			// What the server sends before it answers the next request is
			// all it sends for the stray (one session is served in order).
			probe := rc.token()
			rc.send(rc.get(probe, -1, "mitigate", "cuid="+rc.cuid))
			before := untilAnswer(t, rc, probe)
			var resets int
			for _, m := range before {
				switch {
				case tc.transport == "dtls" && m.Type == message.Reset && m.Code == codes.Empty && m.MessageID == strayMID:
					resets++
				case string(m.Token) == string(stray) || m.Type == message.Acknowledgement && m.MessageID == strayMID:
					t.Errorf("the stray response was answered: %v %v mid %d token %x %q", m.Type, m.Code, m.MessageID, m.Token, m.Payload)
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.reset]; resets != want {
				t.Errorf("%d Resets for the stray response, want %d", resets, want)
			}
		})
	}
}

// The answer to the server's own heartbeat (RFC 9132 §4.7) is claimed by
// its exchange: sent Confirmable, as go-coap clients answer a
// Non-confirmable request, it is acknowledged, not reset.
func TestHeartbeatAnswerAcknowledged(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	rc := dialRaw(t, e, "alpha", "dtls")
	rc.roundTrip(t, rc.get(rc.token(), -1, "config"))
	clk.Advance(30 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	var hb message.Message
	for {
		m, err := rc.read(deadline)
		if err != nil {
			t.Fatalf("no heartbeat from the server: %v", err)
		}
		if m.Code == codes.PUT {
			hb = m
			break
		}
	}
	rc.send(message.Message{Code: codes.Changed, Type: message.Confirmable, Token: hb.Token})
	mid := rc.mid.Load()
	m, err := rc.read(time.Now().Add(10 * time.Second))
	if err != nil {
		t.Fatalf("the answer to the heartbeat was not acknowledged: %v", err)
	}
	if m.Type != message.Acknowledgement || m.Code != codes.Empty || m.MessageID != mid {
		t.Fatalf("answer to the heartbeat: got %v %v mid %d, want an empty Acknowledgement with mid %d", m.Type, m.Code, m.MessageID, mid)
	}
}

// untilAnswer returns the messages the server sends before the answer to
// token, answering its heartbeats.
func untilAnswer(t *testing.T, rc *rawConn, token message.Token) []message.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var before []message.Message
	for {
		m, err := rc.read(deadline)
		if err != nil {
			t.Fatalf("no answer to the request after the stray response: %v", err)
		}
		if string(m.Token) == string(token) && m.Code >= codes.Created && m.Code < codes.CSM {
			return before
		}
		if m.Code == codes.PUT {
			rc.send(message.Message{Code: codes.Changed, Token: m.Token, Type: message.Acknowledgement})
			continue
		}
		if m.Code >= codes.CSM { // TCP signals
			continue
		}
		before = append(before, m)
	}
}
