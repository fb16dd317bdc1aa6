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
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// heartbeat is a client heartbeat, PUT /.well-known/dots/hb (RFC 9132 §4.7).
func (rc *rawConn) heartbeat(tok message.Token) message.Message {
	var opts message.Options
	for _, seg := range []string{".well-known", "dots", "hb"} {
		opts = append(opts, message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	opts = append(opts, uintOpt(message.ContentFormat, dots.ContentFormat))
	body := dots.MustEncode(&dots.Message{Heartbeat: &dots.Heartbeat{PeerHBStatus: dots.Ptr(true)}})
	return message.Message{Code: codes.PUT, Token: tok, Type: message.NonConfirmable, Options: opts, Payload: body}
}

// answers sends each message and returns the codes of the answers that
// arrive before the answer to the last one, by token: a dropped request has
// none.
func (rc *rawConn) answers(t *testing.T, ms ...message.Message) map[string]codes.Code {
	t.Helper()
	for _, m := range ms {
		rc.send(m)
	}
	last := string(ms[len(ms)-1].Token)
	got := map[string]codes.Code{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := rc.read(deadline)
		if err != nil {
			t.Fatalf("waiting for the answer to the last of %d requests: %v", len(ms), err)
		}
		if m.Code == codes.PUT { // the server's heartbeat
			rc.send(message.Message{Code: codes.Changed, Token: m.Token, Type: message.Acknowledgement})
			continue
		}
		if m.Code >= codes.Created && m.Code < codes.CSM {
			got[string(m.Token)] = m.Code
		}
		if string(m.Token) == last {
			return got
		}
	}
}

// TestRateLimitPerClient: alpha's domain allows bursts of 3 and one request
// every 2 s. Past its burst alpha gets 4.29 with Max-Age (the seconds until
// a token is available) and a diagnostic, while its heartbeats are answered
// 2.04 and beta's requests all succeed. Over TLS every refused request is
// answered; over DTLS one a second, the others are dropped. A token comes
// back after Max-Age of the server's clock.
func TestRateLimitPerClient(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		clk.Install(o)
		o.RateLimit = dotsserver.RateLimit{RequestsPerSecond: 1000, Burst: 1000}
		o.Domains[0].RateLimit = &dotsserver.RateLimit{RequestsPerSecond: 0.5, Burst: 3}
	})
	beta := e.client(t, "beta", "dtls")
	mid := uint32(1)
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			alpha := dialRaw(t, e, "alpha", transport)
			get := func() message.Message {
				m := alpha.get(alpha.token(), -1, "mitigate", "cuid="+alpha.cuid)
				m.Type = message.NonConfirmable
				return alpha.roundTrip(t, m)
			}
			for i := 0; i < 3; i++ {
				if r := get(); r.Code == codes.TooManyRequests {
					t.Fatalf("request %d within the burst: 4.29 %q", i+1, diagOf(r))
				}
			}
			refusals := 5
			if transport == "dtls" {
				refusals = 1
			}
			for i := 0; i < refusals; i++ {
				r := get()
				if r.Code != codes.TooManyRequests {
					t.Fatalf("request %d past the burst: %v, want 4.29", i+4, r.Code)
				}
				if v, ok := optUint(r, message.MaxAge); !ok || v != 2 {
					t.Fatalf("4.29 Max-Age %d (present %v), want 2", v, ok)
				}
				if d := diagOf(r); !strings.Contains(d, "too many requests") || !strings.Contains(d, alpha.cuid) {
					t.Fatalf("4.29 diagnostic %q", d)
				}
			}
			for i := 0; i < 5; i++ {
				if r := alpha.roundTrip(t, alpha.heartbeat(alpha.token())); r.Code != codes.Changed {
					t.Fatalf("heartbeat of a client at its limit: %v %q, want 2.04", r.Code, diagOf(r))
				}
			}
			if transport == "dtls" {
				// Within the second of the last 4.29: dropped, while the
				// heartbeat behind them is answered.
				var ms []message.Message
				for i := 0; i < 4; i++ {
					m := alpha.get(alpha.token(), -1, "mitigate", "cuid="+alpha.cuid)
					m.Type = message.NonConfirmable
					ms = append(ms, m)
				}
				hb := alpha.heartbeat(alpha.token())
				got := alpha.answers(t, append(ms, hb)...)
				if len(got) != 1 || got[string(hb.Token)] != codes.Changed {
					t.Fatalf("answers %v, want only the heartbeat's 2.04", got)
				}
				clk.Advance(time.Second) // half a token: refused, and answered again
				r := get()
				if v, _ := optUint(r, message.MaxAge); r.Code != codes.TooManyRequests || v != 1 {
					t.Fatalf("a second later: %v Max-Age %d, want 4.29 with Max-Age 1", r.Code, v)
				}
				clk.Advance(time.Second)
			} else {
				clk.Advance(2 * time.Second)
			}
			for i := 0; i < 20; i++ {
				mid++
				expect(t, dots.Created)(beta.Mitigate(ctx(t), mid, scope(fmt.Sprintf("203.0.113.%d/32", 128+mid), 3600)))
			}
			if r := get(); r.Code == codes.TooManyRequests {
				t.Fatalf("after Max-Age: 4.29 %q", diagOf(r))
			}
			if r := get(); r.Code != codes.TooManyRequests {
				t.Fatalf("second request after Max-Age: %v, want 4.29", r.Code)
			}
			clk.Advance(time.Minute) // refill for the next transport
		})
	}
}
