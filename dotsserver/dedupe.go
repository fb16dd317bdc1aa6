package dotsserver

import (
	"container/list"
	"math"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpCoder "github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/levee-dots/levee/dotsserver/session"
)

// Repeated requests over DTLS (RFC 7252 §4.5, RFC 9132 §4.4.1).
//
// A Confirmable or Non-confirmable request whose Message ID and token the
// session already answered is not executed again: the answer goes out
// again, byte for byte, as it was first sent. A Confirmable duplicate is
// recognised for EXCHANGE_LIFETIME, a Non-confirmable one for NON_LIFETIME
// (RFC 7252 §4.8.2), both computed from the client's negotiated
// max-retransmit, ack-timeout and ack-random-factor (RFC 9132 §4.5). For
// a NON duplicate RFC 7252 §4.5 lets the "silently ignore" rule be relaxed
// by the message's semantics: a DOTS client repeats a NON request until it
// sees an answer (RFC 9132 §4.4.1), so the answer is repeated; the request
// is still processed once.
//
// go-coap keeps its own cache of every answer for 247 s, without a bound
// in bytes and on the wall clock. It caches only answers to requests typed
// CON or NON; the request is handed to it typed ACK so that this cache is
// the only one, and the answer's type and Message ID are set here.
//
// The cache is bounded: at most dedupeSessionEntries answers and
// dedupeSessionBytes bytes per session, dedupeTotalBytes bytes over all
// sessions. When a bound is reached the oldest answers go first (a
// duplicate arriving after its answer was dropped is executed again,
// which DOTS requests bear: a repeated PUT refreshes, a repeated DELETE
// answers 2.02). A session's answers go when it closes.
const (
	dedupeSessionEntries = 256
	dedupeSessionBytes   = 256 << 10
	dedupeTotalBytes     = 64 << 20
	// dedupeEntryOverhead is what an answer costs beyond its encoded bytes.
	dedupeEntryOverhead = 96
)

// maxLatency is MAX_LATENCY of RFC 7252 §4.8.2.
const maxLatency = 100 * time.Second

// lifetimes returns EXCHANGE_LIFETIME and NON_LIFETIME (RFC 7252 §4.8.2)
// for the session values v.
func lifetimes(v session.Values) (exchange, non time.Duration) {
	ack, factor, retransmit := transmission(v)
	span := float64(ack) * float64(uint64(1)<<retransmit-1) * factor // MAX_TRANSMIT_SPAN
	if span > float64(math.MaxInt64/2) {
		span = float64(math.MaxInt64 / 2)
	}
	maxTransmitSpan := time.Duration(span)
	return maxTransmitSpan + 2*maxLatency + ack, maxTransmitSpan + maxLatency
}

// transmission returns ACK_TIMEOUT, ACK_RANDOM_FACTOR and MAX_RETRANSMIT
// of the session values v (RFC 9132 §4.5); zero values take the defaults.
func transmission(v session.Values) (ack time.Duration, factor float64, retransmit uint32) {
	d := session.Defaults
	if v.AckTimeout <= 0 {
		v.AckTimeout = d.AckTimeout
	}
	if v.AckRandomFactor < 100 {
		v.AckRandomFactor = d.AckRandomFactor
	}
	if v.MaxRetransmit == 0 {
		v.MaxRetransmit = d.MaxRetransmit
	}
	retransmit = uint32(min(v.MaxRetransmit, 30))
	return time.Duration(v.AckTimeout) * 10 * time.Millisecond, float64(v.AckRandomFactor) / 100, retransmit
}

type dedupeEntry struct {
	sess    *dedupeSession
	mid     int32
	token   string
	resp    []byte // the answer as sent
	expires time.Time
	inSess  *list.Element
	inAll   *list.Element
}

func (e *dedupeEntry) size() int { return len(e.resp) + len(e.token) + dedupeEntryOverhead }

type dedupeSession struct {
	byMID map[int32]*dedupeEntry
	order list.List // oldest first
	bytes int
}

// dedupe is the answer cache of all DTLS sessions.
type dedupe struct {
	now func() time.Time
	// bounds; the constants above unless a test sets them
	sessionEntries, sessionBytes, totalBytes int

	mu       sync.Mutex
	sessions map[*udpClient.Conn]*dedupeSession
	all      list.List // oldest first
	bytes    int
}

func newDedupe(now func() time.Time) *dedupe {
	return &dedupe{now: now, sessionEntries: dedupeSessionEntries, sessionBytes: dedupeSessionBytes,
		totalBytes: dedupeTotalBytes, sessions: map[*udpClient.Conn]*dedupeSession{}}
}

// process handles a message received on a DTLS session: a repeated
// request is answered from the cache, a new one is handed to h and its
// answer kept. values gives the negotiated session values of the session
// once h ran; they also set go-coap's retransmission of the session's own
// Confirmable messages.
func (d *dedupe) process(cc *udpClient.Conn, req *pool.Message, h config.HandlerFunc[*udpClient.Conn], values func(*udpClient.Conn) session.Values) {
	typ := req.Type()
	if !isRequest(req.Code()) || typ != message.Confirmable && typ != message.NonConfirmable {
		cc.ProcessReceivedMessageWithHandler(req, rejectStrayCON(req, h))
		return
	}
	mid, token := req.MessageID(), string(req.Token())
	if resp, ok := d.lookup(cc, mid, token); ok {
		cc.ProcessReceivedMessageWithHandler(req, func(w *responsewriter.ResponseWriter[*udpClient.Conn], _ *pool.Message) {
			_, err := w.Message().UnmarshalWithDecoder(udpCoder.DefaultCoder, resp)
			w.Message().SetModified(err == nil)
		})
		return
	}
	req.SetType(message.Acknowledgement) // see the comment at the top of this file
	cc.ProcessReceivedMessageWithHandler(req, func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
		h(w, r)
		m := w.Message()
		switch {
		case typ == message.Confirmable && !m.IsModified():
			// no answer: the empty acknowledgement (RFC 7252 §4.2)
			m.SetCode(codes.Empty)
			m.SetToken(nil)
			m.ResetOptionsTo(nil)
			m.SetBody(nil)
			fallthrough
		case typ == message.Confirmable:
			m.SetType(message.Acknowledgement)
			m.SetMessageID(mid)
		case !m.IsModified():
			return
		default:
			m.SetType(message.NonConfirmable)
		}
		v := values(cc)
		ack, factor, retransmit := transmission(v)
		t := cc.Transmission()
		t.SetTransmissionAcknowledgeTimeout(ack)
		t.SetTransmissionAcknowledgeRandomFactor(factor)
		t.SetTransmissionMaxRetransmit(retransmit)
		exchange, non := lifetimes(v)
		life := non
		if typ == message.Confirmable {
			life = exchange
		}
		if b, err := m.MarshalWithEncoder(udpCoder.DefaultCoder); err == nil {
			d.store(cc, mid, token, append([]byte(nil), b...), life)
		}
	})
}

// lookup returns the answer kept for (cc, mid) if its token is token and
// it has not expired. Another token under the same Message ID is a new
// request: the old answer is dropped.
func (d *dedupe) lookup(cc *udpClient.Conn, mid int32, token string) ([]byte, bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[cc]
	if s == nil {
		return nil, false
	}
	e := s.byMID[mid]
	if e == nil {
		return nil, false
	}
	if e.token != token || !now.Before(e.expires) {
		d.removeLocked(e)
		return nil, false
	}
	return e.resp, true
}

func (d *dedupe) store(cc *udpClient.Conn, mid int32, token string, resp []byte, life time.Duration) {
	now := d.now()
	e := &dedupeEntry{mid: mid, token: token, resp: resp, expires: now.Add(life)}
	if e.size() > d.sessionBytes || e.size() > d.totalBytes {
		return
	}
	d.mu.Lock()
	s := d.sessions[cc]
	if s == nil {
		s = &dedupeSession{byMID: map[int32]*dedupeEntry{}}
		d.sessions[cc] = s
		defer func() {
			cc.AddOnClose(func() { d.dropSession(cc) })
			// go-coap cancels the session's context before it runs the
			// close callbacks: a session closing meanwhile is dropped here.
			if cc.Context().Err() != nil {
				d.dropSession(cc)
			}
		}()
	}
	defer d.mu.Unlock()
	if old := s.byMID[mid]; old != nil {
		d.removeLocked(old)
	}
	d.expireLocked(now)
	for s.order.Len() >= d.sessionEntries || s.bytes+e.size() > d.sessionBytes {
		d.removeLocked(s.order.Front().Value.(*dedupeEntry))
	}
	for d.bytes+e.size() > d.totalBytes {
		d.removeLocked(d.all.Front().Value.(*dedupeEntry))
	}
	e.sess = s
	e.inSess = s.order.PushBack(e)
	e.inAll = d.all.PushBack(e)
	s.byMID[mid] = e
	s.bytes += e.size()
	d.bytes += e.size()
}

// expireLocked drops expired answers from the oldest on, up to the first
// one still alive (lifetimes differ, so a few may stay a little longer;
// lookup never returns them).
func (d *dedupe) expireLocked(now time.Time) {
	for f := d.all.Front(); f != nil; f = d.all.Front() {
		e := f.Value.(*dedupeEntry)
		if now.Before(e.expires) {
			return
		}
		d.removeLocked(e)
	}
}

func (d *dedupe) removeLocked(e *dedupeEntry) {
	s := e.sess
	if s == nil {
		return
	}
	s.order.Remove(e.inSess)
	d.all.Remove(e.inAll)
	delete(s.byMID, e.mid)
	s.bytes -= e.size()
	d.bytes -= e.size()
	e.sess = nil
}

func (d *dedupe) dropSession(cc *udpClient.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[cc]
	if s == nil {
		return
	}
	for f := s.order.Front(); f != nil; f = s.order.Front() {
		d.removeLocked(f.Value.(*dedupeEntry))
	}
	delete(d.sessions, cc)
}

// state returns the number of answers kept and their bytes.
func (d *dedupe) state() (entries, bytes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.all.Len(), d.bytes
}

// sessionValues returns the negotiated values in force for the client of
// a session, or the defaults if the session has no identified client.
func (s *Server) sessionValues(cc *udpClient.Conn) session.Values {
	p, err := s.live.peer(cc)
	if err != nil {
		return session.Defaults
	}
	v, ok := s.svc.SessionValues([]string{p.cuid})[p.cuid]
	if !ok {
		return session.Defaults
	}
	return v
}
