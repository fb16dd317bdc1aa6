package dotsserver

import (
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/levee-dots/levee/dots"
)

// Hooks receive what the signal channel measures on its hot path (metrics).
// Every field may be nil. They are called synchronously, on the goroutine
// that served the request or sent the heartbeat, and must not block.
type Hooks struct {
	// Request is called once for each request the handler answered:
	// its method ("GET", "PUT", "DELETE", "POST" or "other"), its resource
	// ("mitigate", "config", "hb" or "other"), the response code, and the
	// time from the handler's start to its answer. Requests refused before
	// the handler (rate limit, body size, session cap) and repeats answered
	// from the deduplication cache are not seen.
	Request func(method, resource string, code dots.Code, d time.Duration)
	// Heartbeat is called for each heartbeat the server sent (RFC 9132
	// §4.7): the session's transport ("dtls" or "tls"), and whether the
	// client answered it before it was abandoned.
	Heartbeat func(transport string, answered bool)
}

// observeRequest reports a request served since start to Hooks.Request.
func (s *Server) observeRequest(w mux.ResponseWriter, r *mux.Message, start time.Time) {
	code := dots.Code(0)
	if m := w.Message(); m != nil && m.IsModified() {
		code = dots.Code(m.Code())
	}
	s.opts.Hooks.Request(methodName(r.Code()), resourceName(r), code, s.now().Sub(start))
}

func methodName(c codes.Code) string {
	switch c {
	case codes.GET:
		return "GET"
	case codes.PUT:
		return "PUT"
	case codes.DELETE:
		return "DELETE"
	case codes.POST:
		return "POST"
	}
	return "other"
}

// resourceName returns the DOTS resource a request names, from a fixed set
// (a peer cannot make up label values).
func resourceName(r *mux.Message) string {
	n := 0
	for _, o := range r.Options() {
		if o.ID != message.URIPath {
			continue
		}
		n++
		if n == 3 {
			switch string(o.Value) {
			case "mitigate":
				return "mitigate"
			case "config":
				return "config"
			case "hb":
				return "hb"
			}
			return "other"
		}
	}
	return "other"
}

// Sessions returns the open signal-channel sessions (DTLS associations and
// TLS connections past their handshake) by transport: "dtls" and "tls".
func (s *Server) Sessions() map[string]int {
	out := map[string]int{"dtls": 0, "tls": 0}
	s.live.mu.Lock()
	for _, cs := range s.live.conns {
		out[transportOf(cs.udp)]++
	}
	s.live.mu.Unlock()
	return out
}

// TLSStats counts the TLS handshakes of the signal channel's TCP
// listeners, summed over the listeners.
type TLSStats struct {
	Completed uint64 // handshakes that completed (the client certificate verified)
	Failed    uint64 // handshakes that failed or timed out
}

// TLSStats returns the counters of the TLS listeners, for metrics.
func (s *Server) TLSStats() TLSStats {
	var st TLSStats
	for _, l := range s.listeners {
		if tl, ok := l.(*tlsListener); ok {
			st.Completed += tl.completed.Load()
			st.Failed += tl.failed.Load()
		}
	}
	return st
}

// tlsCounters are a TLS listener's handshake counters.
type tlsCounters struct {
	completed, failed atomic.Uint64
}

func transportOf(udp bool) string {
	if udp {
		return "dtls"
	}
	return "tls"
}
