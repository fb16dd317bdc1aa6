package dotsserver_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
)

// TestObserveLimit: a session may hold Limits.MaxObservePerSession
// registrations; the next is answered 5.03 with Max-Age and a diagnostic,
// and is not registered. Re-registering a token and registering after a
// cancellation still work.
func TestObserveLimit(t *testing.T) {
	const limit = 3
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.Limits.MaxObservePerSession = limit })
	for i, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			rc := dialRaw(t, e, "alpha", transport)
			mid := uint32(700 + i)
			body := dots.MustEncode(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope(fmt.Sprintf("203.0.113.%d/32", 70+i), 3600)}}})
			if r := rc.roundTrip(t, rc.mitigatePut(rc.token(), mid, nil, body)); r.Code != codes.Created {
				t.Fatalf("PUT: %v %q", r.Code, diagOf(r))
			}
			path := []string{"mitigate", "cuid=" + rc.cuid}
			observe := func(tok message.Token, obs int) message.Message {
				return rc.roundTrip(t, rc.get(tok, obs, path...))
			}
			registered := func(m message.Message) bool {
				_, ok := optUint(m, message.Observe)
				return m.Code == codes.Content && ok
			}
			toks := make([]message.Token, limit+1)
			for j := range toks {
				toks[j] = rc.token()
			}
			for j := 0; j < limit; j++ {
				if r := observe(toks[j], 0); !registered(r) {
					t.Fatalf("registration %d: %v %q, want 2.05 with Observe", j+1, r.Code, diagOf(r))
				}
			}
			r := observe(toks[limit], 0)
			if r.Code != codes.ServiceUnavailable || registered(r) {
				t.Fatalf("registration over the limit: %v, want 5.03 without Observe", r.Code)
			}
			if _, ok := optUint(r, message.MaxAge); !ok {
				t.Fatal("5.03 without Max-Age")
			}
			if d := diagOf(r); !strings.Contains(d, fmt.Sprintf("%d Observe registrations", limit)) {
				t.Fatalf("diagnostic %q does not name the limit", d)
			}
			if r := observe(toks[0], 0); !registered(r) {
				t.Fatalf("re-registering a token at the limit: %v %q", r.Code, diagOf(r))
			}
			if r := observe(toks[1], 1); r.Code != codes.Content || registered(r) {
				t.Fatalf("cancellation: %v", r.Code)
			}
			if r := observe(toks[limit], 0); !registered(r) {
				t.Fatalf("registration after a cancellation: %v %q", r.Code, diagOf(r))
			}
		})
	}
}

// TestSessionsPerClientLimit: a client may hold Limits.MaxSessionsPerClient
// sessions; a newer one gets 5.03 with Max-Age and a diagnostic to its first
// request and is closed. Other clients are unaffected, and once a session
// ends the client may open another.
func TestSessionsPerClientLimit(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.Limits.MaxSessionsPerClient = 2 })
	probe := func(t *testing.T, rc *rawConn) message.Message {
		return rc.roundTrip(t, rc.get(rc.token(), -1, "mitigate", "cuid="+rc.cuid))
	}
	first := dialRaw(t, e, "alpha", "dtls")
	second := dialRaw(t, e, "alpha", "tls")
	for _, rc := range []*rawConn{first, second} {
		if r := probe(t, rc); r.Code == codes.ServiceUnavailable {
			t.Fatalf("%s session within the limit refused: %q", rc.transport, diagOf(r))
		}
	}
	for _, transport := range []string{"dtls", "tls"} {
		rc := dialRaw(t, e, "alpha", transport)
		r := probe(t, rc)
		if r.Code != codes.ServiceUnavailable {
			t.Fatalf("third session over %s: %v, want 5.03", transport, r.Code)
		}
		if v, ok := optUint(r, message.MaxAge); !ok || v == 0 {
			t.Fatalf("5.03 Max-Age %d (present %v)", v, ok)
		}
		if d := diagOf(r); !strings.Contains(d, "2 signal-channel sessions") {
			t.Fatalf("diagnostic %q", d)
		}
		rc.closedByServer(t)
	}
	if r := probe(t, dialRaw(t, e, "beta", "dtls")); r.Code == codes.ServiceUnavailable {
		t.Fatalf("another client refused: %q", diagOf(r))
	}
	first.close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rc := dialRaw(t, e, "alpha", "tls")
		r := probe(t, rc)
		rc.close()
		if r.Code != codes.ServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a session was closed, yet a new one is still refused")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
