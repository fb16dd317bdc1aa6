package dotsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	tcpClient "github.com/plgd-dev/go-coap/v3/tcp/client"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Limits bound what a peer can make the server hold, before and after it
// authenticates. The zero value of a field means its default.
type Limits struct {
	// MaxBodyBytes bounds one request body, whole or assembled from blocks
	// (Block1, Q-Block1). A larger one is answered 4.13 with Size1 set to
	// the bound (RFC 7959 §2.9.3) and never buffered beyond it. Default
	// 64 KiB: a mitigation request with a hundred targets is a few KiB,
	// and RFC 9132 §4.4.1 asks clients to split large scopes anyway.
	MaxBodyBytes int64
	// MaxObservePerSession bounds the Observe registrations of one
	// session. A client needs one on /mitigate and one per mid it follows;
	// the one over the bound is answered 5.03 with Max-Age. Default 64.
	MaxObservePerSession int
	// MaxSessionsPerClient bounds the concurrent signal-channel sessions of
	// one client identity (cuid). A client has one, two while it moves
	// between DTLS and TLS; the newest over the bound is answered 5.03 and
	// closed. Default 8.
	MaxSessionsPerClient int
	// TLSHandshakeTimeout closes a TCP connection whose TLS handshake has
	// not completed this long after it was accepted. Default 10 s.
	TLSHandshakeTimeout time.Duration
	// MaxUnauthenticatedConns bounds the TCP connections that have not
	// completed their TLS handshake; at the bound, the oldest is closed to
	// make room for the newest. Default 256.
	MaxUnauthenticatedConns int
	// DTLS bounds the DTLS handshakes in progress (dtlslimits.go).
	DTLS DTLSLimits
}

// Default limits.
const (
	DefaultMaxBodyBytes            = 64 << 10
	DefaultMaxObservePerSession    = 64
	DefaultMaxSessionsPerClient    = 8
	DefaultTLSHandshakeTimeout     = 10 * time.Second
	DefaultMaxUnauthenticatedConns = 256
)

// MinBodyBytes is the smallest body bound Validate accepts: one 1024-byte
// block, so Block1 transfers remain possible.
const MinBodyBytes = 1024

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxObservePerSession == 0 {
		l.MaxObservePerSession = DefaultMaxObservePerSession
	}
	if l.MaxSessionsPerClient == 0 {
		l.MaxSessionsPerClient = DefaultMaxSessionsPerClient
	}
	if l.TLSHandshakeTimeout == 0 {
		l.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if l.MaxUnauthenticatedConns == 0 {
		l.MaxUnauthenticatedConns = DefaultMaxUnauthenticatedConns
	}
	l.DTLS = l.DTLS.withDefaults()
	return l
}

// Validate reports the first limit out of range (zero fields are defaults).
func (l Limits) Validate() error {
	switch {
	case l.MaxBodyBytes != 0 && (l.MaxBodyBytes < MinBodyBytes || l.MaxBodyBytes > 16<<20):
		return fmt.Errorf("max-body-bytes %d: want %d to %d", l.MaxBodyBytes, MinBodyBytes, 16<<20)
	case l.MaxObservePerSession < 0:
		return fmt.Errorf("max-observe-per-session %d: want at least 1", l.MaxObservePerSession)
	case l.MaxSessionsPerClient < 0:
		return fmt.Errorf("max-sessions-per-client %d: want at least 1", l.MaxSessionsPerClient)
	case l.TLSHandshakeTimeout < 0:
		return fmt.Errorf("tls-handshake-timeout %s: want a positive duration", l.TLSHandshakeTimeout)
	case l.MaxUnauthenticatedConns < 0:
		return fmt.Errorf("max-unauthenticated-connections %d: want at least 1", l.MaxUnauthenticatedConns)
	}
	return l.DTLS.Validate()
}

// tcpHeadroom is what a CoAP-over-TCP message may carry beyond its body:
// header, token and options (Uri-Path with a cuid, Block1, Size1 ...).
const tcpHeadroom = 4096

// tcpMaxMessage is the largest CoAP-over-TCP message read in full; it is
// also announced as Max-Message-Size in the server's CSM (RFC 8323 §5.3.1).
func (l Limits) tcpMaxMessage() uint32 { return uint32(l.MaxBodyBytes) + tcpHeadroom }

// bodyMethod reports whether a request code carries a body.
func bodyMethod(c codes.Code) bool {
	switch c {
	case codes.POST, codes.PUT, codes.FETCH, codes.PATCH, codes.IPATCH:
		return true
	}
	return false
}

// announcedBodySize is the size of the body a request belongs to, as far
// as this message tells: the end of its block (Block1 or Q-Block1, RFC 7959
// §2.2, RFC 9177 §4) or its whole body, or Size1 if that is larger.
func announcedBodySize(req *pool.Message) int64 {
	var n int64
	if req.Body() != nil {
		if sz, err := req.BodySize(); err == nil {
			n = sz
		}
	}
	for _, id := range []message.OptionID{message.Block1, message.QBlock1} {
		v, err := req.GetOptionUint32(id)
		if err != nil {
			continue
		}
		if szx, num, _, err := blockwise.DecodeBlockOption(v); err == nil {
			n += num * szx.Size()
		}
	}
	if v, err := req.GetOptionUint32(message.Size1); err == nil && int64(v) > n {
		n = int64(v)
	}
	return n
}

// oversize reports a request whose body is larger than the bound, before
// go-coap's block-wise layer stores any of it.
func (s *Server) oversize(req *pool.Message) (int64, bool) {
	if !bodyMethod(req.Code()) {
		return 0, false
	}
	n := announcedBodySize(req)
	return n, n > s.limits.MaxBodyBytes
}

func tooLargeDiag(size, limit int64) string {
	return fmt.Sprintf("request body of %d bytes is larger than this server accepts (%d bytes, see Size1): split the scope over several mitigation requests", size, limit)
}

// tcpTooLarge answers an oversize TLS request with 4.13 and Size1.
func (s *Server) tcpTooLarge(cc *tcpClient.Conn, req *pool.Message, size int64) error {
	return tcpReply(cc, req, codes.RequestEntityTooLarge, tooLargeDiag(size, s.limits.MaxBodyBytes), message.Size1, uint32(s.limits.MaxBodyBytes))
}

// udpTooLarge answers an oversize DTLS request with 4.13 and Size1.
func (s *Server) udpTooLarge(size int64) func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
	return udpReply(codes.RequestEntityTooLarge, tooLargeDiag(size, s.limits.MaxBodyBytes), message.Size1, uint32(s.limits.MaxBodyBytes))
}

// tcpReply writes an error response with a diagnostic and one uint option
// (Size1, Max-Age) from go-coap's TLS reader, before the request is queued.
func tcpReply(cc *tcpClient.Conn, req *pool.Message, code codes.Code, diag string, opt message.OptionID, v uint32) error {
	resp := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(resp)
	resp.SetCode(code)
	resp.SetToken(req.Token())
	resp.SetContentFormat(message.TextPlain)
	if opt != 0 {
		resp.SetOptionUint32(opt, v)
	}
	resp.SetBody(strings.NewReader(diag))
	if err := cc.Session().WriteMessage(resp); err != nil {
		return fmt.Errorf("writing %v: %w", code, err)
	}
	return nil
}

// udpReply is tcpReply for DTLS: the answer rides in the acknowledgement
// of a Confirmable request and is Non-confirmable otherwise. opt 0 adds
// no option.
func udpReply(code codes.Code, diag string, opt message.OptionID, v uint32) func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
	return func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
		_ = w.SetResponse(code, message.TextPlain, strings.NewReader(diag))
		if opt != 0 {
			w.Message().SetOptionUint32(opt, v)
		}
		if r.Type() == message.Confirmable {
			w.Message().SetType(message.Acknowledgement)
			w.Message().SetMessageID(r.MessageID())
		} else {
			w.Message().SetType(message.NonConfirmable)
			w.Message().SetMessageID(w.Conn().GetMessageID())
		}
	}
}

// isRequest tells request codes (0.01 to 0.31) from responses, empty
// messages and signals.
func isRequest(c codes.Code) bool { return c >= codes.GET && c < 32 }

// sessionRefused checks, from a session's first message on, that its
// client is within MaxSessionsPerClient; it returns the refusal, or nil.
// A certificate that maps to no client is left to the request (4.01).
func (s *Server) sessionRefused(conn mux.Conn) *sessionCapError {
	_, err := s.live.peer(conn)
	var ce *sessionCapError
	if !errors.As(err, &ce) {
		return nil
	}
	s.rlog.warn("sessions:"+ce.cuid, "signal-channel session refused: the client has the most sessions allowed",
		"cuid", ce.cuid, "limit", ce.limit, "remote", conn.RemoteAddr().String())
	return ce
}

// blockTransfersPerSession bounds the Block1 transfers one session may
// have in progress, so a session holds at most that many times
// MaxBodyBytes (go-coap's default is 4096 transfers).
const blockTransfersPerSession = 8

// libraryDiag is the diagnostic for an error answer go-coap's block-wise
// layer sends without one (RFC 9132 §9: every 4.xx and 5.xx carries one).
func libraryDiag(c codes.Code) string {
	switch c {
	case codes.RequestEntityIncomplete:
		return "block-wise transfer incomplete: a block is missing or out of order (RFC 7959 §2.9.2); send the body again from block 0"
	case codes.ServiceUnavailable:
		return fmt.Sprintf("too many block-wise transfers in progress on this session (at most %d): retry after Max-Age", blockTransfersPerSession)
	case codes.RequestEntityTooLarge:
		return "request body too large (see Size1)"
	}
	return fmt.Sprintf("%v: the request was not processed", c)
}

// libraryRetry is the Max-Age of a 5.03 from the block-wise layer.
const libraryRetry = 5

// backfillDiag gives an error answer without a payload its diagnostic
// (and a 5.03 its Max-Age).
func backfillDiag(m *pool.Message) {
	if m.Code() < codes.BadRequest {
		return
	}
	if n, err := m.BodySize(); err == nil && n > 0 {
		return
	}
	m.SetContentFormat(message.TextPlain)
	m.SetBody(strings.NewReader(libraryDiag(m.Code())))
	if m.Code() == codes.ServiceUnavailable && !m.HasOption(message.MaxAge) {
		m.SetOptionUint32(message.MaxAge, libraryRetry)
	}
}

// sessionRetry is the Max-Age of a 5.03 refusing a session: when to retry.
const sessionRetry = 60

// rateLog writes at most one line per key and interval, and says how many
// were held back since the last one; it keeps a bounded number of keys.
type rateLog struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration
	mu       sync.Mutex
	last     map[string]*rateEntry
}

type rateEntry struct {
	at         time.Time
	suppressed int
}

const rateLogKeys = 4096

func newRateLog(log *slog.Logger, now func() time.Time, interval time.Duration) *rateLog {
	return &rateLog{log: log, now: now, interval: interval, last: map[string]*rateEntry{}}
}

// warn logs msg at WARN unless a line with the same key went out within
// the interval.
func (r *rateLog) warn(key, msg string, args ...any) {
	now := r.now()
	r.mu.Lock()
	e := r.last[key]
	if e != nil && now.Sub(e.at) < r.interval {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	if e == nil {
		if len(r.last) >= rateLogKeys {
			clear(r.last)
		}
		e = &rateEntry{}
		r.last[key] = e
	}
	n := e.suppressed
	e.at, e.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn(msg, args...)
}
