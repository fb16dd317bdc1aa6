package dotsclient

import (
	"sync"
	"time"
)

// hsRTT takes round-trip samples from a DTLS handshake, so that the first
// NON request of a new session is repeated at the pace an RTT estimate
// allows (requests.go) instead of every 3 s: a one-shot command has no
// earlier request to learn from. A sample is the time from a client flight
// to the first datagram of the server's answer to it, taken only when that
// flight was sent once (Karn's rule, RFC 6298 §3: the answer to a
// retransmitted flight may be the answer to any of its copies), and only
// when it came before the retransmission timer (below limit): later, the
// answer may be the server's own retransmission of a lost one.
//
// Flights and answers are told apart by the first record of a datagram,
// which in the handshake before ChangeCipherSpec is in the clear (RFC 6347
// §4.1 and §4.2.2): a ClientHello without a cookie is answered by a
// HelloVerifyRequest (or a ServerHello), a ClientHello with one by a ServerHello, and the
// client's second flight (Certificate or ClientKeyExchange first) by the
// server's ChangeCipherSpec. A server's repeat of an earlier flight does
// not match the client's current one and is not taken.
type hsRTT struct {
	now   func() time.Time
	limit time.Duration

	mu      sync.Mutex
	flight  hsMessage // first handshake message of the client's current flight
	sends   int       // times the current flight was written
	sentAt  time.Time
	pending bool // the current flight awaits its first answer
	samples []time.Duration
}

// hsMessage is a handshake message by type and message_seq.
type hsMessage struct {
	typ byte
	seq uint16
}

// Handshake and record types read by hsRTT (RFC 6347 §4.1, §4.2.2, §4.3.2).
const (
	recordChangeCipherSpec = 20
	recordHandshake        = 22
	hsClientHello          = 1
	hsServerHello          = 2
	hsHelloVerifyRequest   = 3
	dtlsRecordHeader       = 13
	dtlsHandshakeHeader    = 12
)

func newHSRTT(now func() time.Time, limit time.Duration) *hsRTT {
	return &hsRTT{now: now, limit: limit}
}

// firstHandshake returns the first handshake message of a datagram whose
// first record is an epoch-0 handshake record.
func firstHandshake(b []byte) (hsMessage, bool) {
	if len(b) < dtlsRecordHeader+dtlsHandshakeHeader || b[0] != recordHandshake || b[3] != 0 || b[4] != 0 {
		return hsMessage{}, false
	}
	h := b[dtlsRecordHeader:]
	return hsMessage{typ: h[0], seq: uint16(h[4])<<8 | uint16(h[5])}, true
}

// wrote notes a datagram the client sent.
func (p *hsRTT) wrote(b []byte) {
	m, ok := firstHandshake(b)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sends > 0 && m == p.flight {
		p.sends++ // a retransmission: its answer is ambiguous
		return
	}
	p.flight, p.sends, p.sentAt, p.pending = m, 1, p.now(), true
}

// read notes a datagram from the server.
func (p *hsRTT) read(b []byte) {
	if len(b) < dtlsRecordHeader || (b[0] != recordHandshake && b[0] != recordChangeCipherSpec) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pending || !answers(p.flight, b) {
		return
	}
	p.pending = false
	if r := p.now().Sub(p.sentAt); p.sends == 1 && r < p.limit {
		p.samples = append(p.samples, r)
	}
}

// answers reports whether datagram b starts the server's answer to the
// client flight that starts with message f. The server numbers its
// messages as the client does (RFC 6347 §4.2.2): a HelloVerifyRequest or
// ServerHello answers the ClientHello of the same message_seq, so a late
// HelloVerifyRequest for an earlier ClientHello is no answer.
func answers(f hsMessage, b []byte) bool {
	if f.typ != hsClientHello {
		return b[0] == recordChangeCipherSpec
	}
	m, ok := firstHandshake(b)
	return ok && m.seq == f.seq && (m.typ == hsHelloVerifyRequest || m.typ == hsServerHello)
}

// taken returns the samples so far, oldest first.
func (p *hsRTT) taken() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.samples...)
}
