package dotsserver_test

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// TestSessionCapReplacesSilentSession: a client at its session limit gets
// a new session in place of its longest-silent one once that one has
// missed a heartbeat (30 s interval + 5 s grace); sessions that are heard
// from keep their places, and until one goes silent the new one is refused.
func TestSessionCapReplacesSilentSession(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		clk.Install(o)
		o.Limits.MaxSessionsPerClient = 2
	})
	probe := func(rc *rawConn) message.Message {
		return rc.roundTrip(t, rc.get(rc.token(), -1, "mitigate", "cuid="+rc.cuid))
	}
	quiet := dialRaw(t, e, "alpha", "dtls")
	busy := dialRaw(t, e, "alpha", "tls")
	for _, rc := range []*rawConn{quiet, busy} {
		if r := probe(rc); r.Code == codes.ServiceUnavailable {
			t.Fatalf("%s session within the limit refused: %q", rc.transport, diagOf(r))
		}
	}
	early := dialRaw(t, e, "alpha", "tls")
	if r := probe(early); r.Code != codes.ServiceUnavailable {
		t.Fatalf("third session while both are heard from: %v, want 5.03", r.Code)
	}
	early.closedByServer(t)

	clk.Advance(20 * time.Second)
	probe(busy)
	clk.Advance(16 * time.Second) // quiet: 36 s silent; busy: 16 s
	fresh := dialRaw(t, e, "alpha", "tls")
	if r := probe(fresh); r.Code == codes.ServiceUnavailable {
		t.Fatalf("new session with a silent one at the limit: 5.03 %q, want it in the silent one's place", diagOf(r))
	}
	quiet.closedByServer(t)
	if r := probe(busy); r.Code == codes.ServiceUnavailable {
		t.Fatalf("the session that was heard from lost its place: %q", diagOf(r))
	}
	// Both places are taken by sessions heard from: refused again.
	late := dialRaw(t, e, "alpha", "dtls")
	if r := probe(late); r.Code != codes.ServiceUnavailable {
		t.Fatalf("third session again: %v, want 5.03", r.Code)
	}
}
