package dotsserver

import (
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

func TestIsHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		name string
		code codes.Code
		path []string
		want bool
	}{
		{"heartbeat", codes.PUT, []string{".well-known", "dots", "hb"}, true},
		{"GET /hb", codes.GET, []string{".well-known", "dots", "hb"}, false},
		{"with a parameter", codes.PUT, []string{".well-known", "dots", "hb", "cuid=x"}, false},
		{"mitigation", codes.PUT, []string{".well-known", "dots", "mitigate", "cuid=x", "mid=1"}, false},
		{"short", codes.PUT, []string{".well-known", "dots"}, false},
		{"other root", codes.PUT, []string{"dots", "hb"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := pool.NewMessage(context.Background())
			m.SetCode(tc.code)
			for _, seg := range tc.path {
				m.AddOptionString(message.URIPath, seg)
			}
			if got := isHeartbeat(m); got != tc.want {
				t.Fatalf("isHeartbeat %v %q = %v", tc.code, tc.path, got)
			}
		})
	}
}

// TestRateLimiter: a bucket starts full, refills at its rate up to its
// burst, tells the wait until the next token, answers one refusal a
// second, and is forgotten once full again.
func TestRateLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	l := newRateLimiter(RateLimit{RequestsPerSecond: 4, Burst: 2})
	slow := &RateLimit{RequestsPerSecond: 0.01} // burst: the server's
	for i := 0; i < 2; i++ {
		if v := l.allow("a", nil, t0); !v.ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	v := l.allow("a", nil, t0)
	if v.ok || v.wait != 250*time.Millisecond || !v.answer {
		t.Fatalf("past the burst: %+v, want refused, 250ms, answered", v)
	}
	if v := l.allow("a", nil, t0.Add(100*time.Millisecond)); v.ok || v.answer || v.wait != 150*time.Millisecond {
		t.Fatalf("100ms later: %+v, want refused unanswered, 150ms", v)
	}
	if v := l.allow("a", nil, t0.Add(250*time.Millisecond)); !v.ok {
		t.Fatal("a token after 250ms refused")
	}
	if v := l.allow("b", nil, t0); !v.ok {
		t.Fatal("another identity refused")
	}
	for i := 0; i < 2; i++ {
		l.allow("s", slow, t0)
	}
	if v := l.allow("s", slow, t0); v.ok || v.wait != 100*time.Second || v.rate.Burst != 2 {
		t.Fatalf("a domain's own rate: %+v, want refused for 100s with the server's burst", v)
	}
	l.allow("a", nil, t0.Add(rateSweepEvery)) // sweeps: a and b are full again, s is not
	l.mu.Lock()
	_, a := l.byID["a"]
	_, s := l.byID["s"]
	l.mu.Unlock()
	if !a || !s {
		t.Fatalf("after the sweep: a kept %v (just used), s kept %v (not full)", a, s)
	}
	l.mu.Lock()
	_, b := l.byID["b"]
	l.mu.Unlock()
	if b {
		t.Fatal("a full bucket was kept by the sweep")
	}
}

func TestRateLimitValidate(t *testing.T) {
	for _, r := range []RateLimit{{RequestsPerSecond: -1}, {RequestsPerSecond: 2e6}, {Burst: -1}, {Burst: 2e6}} {
		if r.Validate() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if err := (RateLimit{RequestsPerSecond: 0.5, Burst: 1}).Validate(); err != nil {
		t.Error(err)
	}
}
