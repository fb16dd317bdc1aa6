package dotsserver

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// RateLimit is a token bucket of one client identity (cuid): it may send
// Burst requests at once and RequestsPerSecond on average. A request over
// it is answered 4.29 Too Many Requests with Max-Age set to the seconds
// until a token is available (RFC 8516) and a diagnostic, before its body
// is read, so it costs none of the resources shared with other clients
// (the service's state lock, the journal, the notification workers).
//
// Over DTLS, a client over its limit gets at most one 4.29 a second; the
// requests refused beyond it are dropped unanswered. A client re-sends a
// Non-confirmable request until it is answered (RFC 9132 §4.4.1) and a
// Confirmable one by CoAP's own rules, so one that heeds Max-Age loses
// nothing, while one that does not is slowed by its own retransmission
// timers instead of being served 4.29 as fast as it can send: those answers
// (encoding, encryption, a datagram each) were most of what such a client
// still cost. Over TLS every request is answered: TCP has no retransmission
// that would recover a dropped one; after a 4.29 the session is not read
// again until a token is available (ratelimit_tcp.go).
//
// Heartbeats (PUT /.well-known/dots/hb, RFC 9132 §4.7) are never refused
// and take no token: they are how a session survives an attack. Responses,
// empty messages and CoAP-over-TCP signals are not requests and are not
// counted either; every message still counts as traffic from the client
// for loss detection.
//
// A zero field means the server's value (Options.RateLimit), and there the
// default.
type RateLimit struct {
	RequestsPerSecond float64
	Burst             int
}

// Default rate limit: far above what a DOTS client needs in an attack (a
// mitigation request per target, a GET per Observe refresh), far below
// what one client would need to slow the others.
const (
	DefaultRequestsPerSecond = 100
	DefaultRequestBurst      = 1000
	// MaxRequestsPerSecond and MaxRequestBurst bound what Validate accepts.
	MaxRequestsPerSecond = 1e6
	MaxRequestBurst      = 1e6
)

// Validate reports a rate limit out of range (zero fields are defaults).
func (r RateLimit) Validate() error {
	switch {
	case math.IsNaN(r.RequestsPerSecond) || r.RequestsPerSecond < 0 || r.RequestsPerSecond > MaxRequestsPerSecond:
		return fmt.Errorf("requests-per-second %g: want more than 0, at most %g", r.RequestsPerSecond, float64(MaxRequestsPerSecond))
	case r.Burst < 0 || r.Burst > MaxRequestBurst:
		return fmt.Errorf("request-burst %d: want 1 to %d", r.Burst, int(MaxRequestBurst))
	}
	return nil
}

// or fills the zero fields of r from d.
func (r RateLimit) or(d RateLimit) RateLimit {
	if r.RequestsPerSecond == 0 {
		r.RequestsPerSecond = d.RequestsPerSecond
	}
	if r.Burst == 0 {
		r.Burst = d.Burst
	}
	return r
}

var defaultRateLimit = RateLimit{RequestsPerSecond: DefaultRequestsPerSecond, Burst: DefaultRequestBurst}

// bucket is one client's token bucket.
type bucket struct {
	rate     RateLimit
	tokens   float64
	at       time.Time
	answered time.Time // the last refusal answered over DTLS
}

// refusalAnswerEvery is how often a DTLS client over its limit gets a 4.29.
const refusalAnswerEvery = time.Second

// refill brings the bucket to now.
func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(b.rate.Burst), b.tokens+d.Seconds()*b.rate.RequestsPerSecond)
		b.at = now
	}
}

// take spends a token, or tells how long until one is available.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := (1 - b.tokens) / b.rate.RequestsPerSecond
	return false, time.Duration(math.Ceil(wait * float64(time.Second)))
}

// rateLimiter keeps the buckets of the client identities seen; a bucket
// that has refilled is forgotten (it would start full anyway).
type rateLimiter struct {
	def   RateLimit
	mu    sync.Mutex
	byID  map[string]*bucket
	swept time.Time
}

// rateSweepEvery is how often full buckets are dropped.
const rateSweepEvery = time.Minute

func newRateLimiter(def RateLimit) *rateLimiter {
	return &rateLimiter{def: def.or(defaultRateLimit), byID: map[string]*bucket{}}
}

// verdict is the limiter's answer to one request.
type verdict struct {
	ok     bool
	wait   time.Duration // until a token is available, when !ok
	rate   RateLimit
	answer bool // when !ok: a DTLS refusal to answer (the first in refusalAnswerEvery)
}

// allow spends one of the identity's tokens; when none is left it tells
// the wait until one is.
func (l *rateLimiter) allow(id string, rate *RateLimit, now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= rateSweepEvery {
		l.sweepLocked(now)
	}
	r := l.def
	if rate != nil {
		r = rate.or(l.def)
	}
	b := l.byID[id]
	if b == nil {
		b = &bucket{rate: r, tokens: float64(r.Burst), at: now}
		l.byID[id] = b
	} else if b.rate != r { // reloaded (reload.go)
		b.refill(now)
		b.rate, b.tokens = r, min(b.tokens, float64(r.Burst))
	}
	ok, wait := b.take(now)
	v := verdict{ok: ok, wait: wait, rate: b.rate}
	if !ok && now.Sub(b.answered) >= refusalAnswerEvery {
		v.answer, b.answered = true, now
	}
	return v
}

func (l *rateLimiter) sweepLocked(now time.Time) {
	l.swept = now
	for id, b := range l.byID {
		if b.refill(now); b.tokens >= float64(b.rate.Burst) {
			delete(l.byID, id)
		}
	}
}

// isHeartbeat reports a client heartbeat: PUT on exactly
// /.well-known/dots/hb.
func isHeartbeat(req *pool.Message) bool {
	if req.Code() != codes.PUT {
		return false
	}
	want := [...]string{".well-known", "dots", "hb"}
	n := 0
	for _, o := range req.Options() {
		if o.ID != message.URIPath {
			continue
		}
		if n >= len(want) || string(o.Value) != want[n] {
			return false
		}
		n++
	}
	return n == len(want)
}

// throttled is a request refused by the client's rate limit.
type throttled struct {
	drop   bool // DTLS: leave it unanswered
	diag   string
	maxAge uint32        // seconds until a token is available, at least 1
	wait   time.Duration // until a token is available
}

// throttle spends a token of the request's client, or returns the 4.29
// answer (or, over DTLS, that there is none). Requests of sessions not
// (yet) identified are left to the handler, which refuses them.
func (s *Server) throttle(conn mux.Conn, req *pool.Message) *throttled {
	if !isRequest(req.Code()) || isHeartbeat(req) {
		return nil
	}
	p, err := s.live.peer(conn)
	if err != nil {
		return nil
	}
	v := s.rate.allow(p.cuid, p.domain.RateLimit, s.now())
	if v.ok {
		return nil
	}
	rate := v.rate
	s.rlog.warn("rate:"+p.cuid, "request over the client's rate limit refused (4.29; over DTLS unanswered past one a second)", "cuid", p.cuid,
		"domain", p.domain.Name, "requests-per-second", rate.RequestsPerSecond, "request-burst", rate.Burst,
		"remote", conn.RemoteAddr().String())
	if _, udp := conn.(*udpClient.Conn); udp && !v.answer {
		return &throttled{drop: true}
	}
	secs := uint32(min(math.Ceil(v.wait.Seconds()), math.MaxUint32))
	secs = max(secs, 1)
	return &throttled{maxAge: secs, wait: v.wait, diag: fmt.Sprintf("too many requests: client %s may send %g requests per second (bursts of %d); "+
		"retry after %d s (Max-Age); heartbeats are never limited", p.cuid, rate.RequestsPerSecond, rate.Burst, secs)}
}

// validateRates checks the server's and the domains' rate limits.
func validateRates(o Options) error {
	if err := o.RateLimit.Validate(); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	for _, d := range o.Domains {
		if d.RateLimit == nil {
			continue
		}
		if err := d.RateLimit.Validate(); err != nil {
			return fmt.Errorf("client domain %q: rate limit: %w", d.Name, err)
		}
	}
	return nil
}
