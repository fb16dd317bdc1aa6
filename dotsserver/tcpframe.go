package dotsserver

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/tcp/coder"
)

// frameGuard sits between a TLS connection and go-coap's CoAP-over-TCP
// reader (RFC 8323 §3.2 framing). go-coap closes the connection when a
// message is longer than its Max-Message-Size; frameGuard instead reads
// such a message's header and token, discards the rest without storing
// it, answers a request with 4.13 and Size1 (RFC 7959 §2.9.3), and passes
// every other message through unchanged. It closes the connection only
// for an oversize message that is not a request.
type frameGuard struct {
	net.Conn // the *tls.Conn
	br       *bufio.Reader
	maxMsg   uint32 // largest whole message passed through
	maxBody  int64  // announced in Size1
	onRefuse func(size uint64)

	wmu sync.Mutex // one message per Write, ours or go-coap's

	// read state, kept across Read calls (a read deadline may interrupt any step)
	pending []byte // header bytes of the message being passed through
	remain  uint64 // bytes of that message still to pass through
	discard uint64 // bytes of an oversize message still to drop
	reply   []byte // 4.13 to send once the oversize message is dropped
}

// errOversizeSignal ends a connection whose peer sent an oversize message
// that is not a request (a response or a signal such as CSM).
var errOversizeSignal = errors.New("oversize CoAP message that is not a request")

func newFrameGuard(c net.Conn, maxMsg uint32, maxBody int64, onRefuse func(uint64)) *frameGuard {
	return &frameGuard{Conn: c, br: bufio.NewReaderSize(c, 4096), maxMsg: maxMsg, maxBody: maxBody, onRefuse: onRefuse}
}

// ConnectionState lets the identity code see the TLS state behind the guard.
func (g *frameGuard) ConnectionState() tls.ConnectionState {
	if tc, ok := g.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Write sends one message (go-coap writes a message per call); an error
// answer of go-coap's block-wise layer gets its diagnostic on the way.
func (g *frameGuard) Write(b []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if out, ok := withDiagnostic(b); ok {
		if _, err := g.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return g.Conn.Write(b)
}

// withDiagnostic re-encodes b when it is exactly one CoAP-over-TCP error
// answer without a payload, adding the diagnostic of backfillDiag.
func withDiagnostic(b []byte) ([]byte, bool) {
	var h coder.MessageHeader
	if _, err := coder.DefaultCoder.DecodeHeader(b, &h); err != nil || h.Code < codes.BadRequest || h.Code >= codes.CSM {
		return nil, false // the common case: no decoding
	}
	m := message.Message{Options: make(message.Options, 0, 16)}
	n, err := coder.DefaultCoder.Decode(b, &m)
	if err != nil || n != len(b) || m.Code < codes.BadRequest || m.Code >= codes.CSM || len(m.Payload) > 0 {
		return nil, false
	}
	var err2 error
	m.Options, _, err2 = m.Options.SetContentFormat(make([]byte, 4), message.TextPlain)
	if err2 != nil {
		return nil, false
	}
	if m.Code == codes.ServiceUnavailable && !m.Options.HasOption(message.MaxAge) {
		if m.Options, _, err2 = m.Options.SetUint32(make([]byte, 4), message.MaxAge, libraryRetry); err2 != nil {
			return nil, false
		}
	}
	m.Payload = []byte(libraryDiag(m.Code))
	size, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return nil, false
	}
	out := make([]byte, size)
	if _, err := coder.DefaultCoder.Encode(m, out); err != nil {
		return nil, false
	}
	return out, true
}

func (g *frameGuard) Read(p []byte) (int, error) {
	for {
		switch {
		case len(g.pending) > 0:
			n := copy(p, g.pending)
			g.pending = g.pending[n:]
			return n, nil
		case g.remain > 0:
			if uint64(len(p)) > g.remain {
				p = p[:g.remain]
			}
			n, err := g.br.Read(p)
			g.remain -= uint64(n)
			return n, err
		case g.discard > 0:
			n, err := g.br.Discard(int(min(g.discard, 1<<20)))
			g.discard -= uint64(n)
			if err != nil {
				return 0, err
			}
			continue
		case g.reply != nil:
			if err := g.sendReply(); err != nil {
				return 0, err
			}
			continue
		}
		if err := g.nextHeader(); err != nil {
			return 0, err
		}
	}
}

// sendReply writes the pending 4.13, bounded in time so that a peer that
// does not read cannot hold the reader forever.
func (g *frameGuard) sendReply() error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	_ = g.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := g.Conn.Write(g.reply)
	_ = g.Conn.SetWriteDeadline(time.Time{})
	g.reply = nil
	if err != nil {
		return fmt.Errorf("writing 4.13: %w", err)
	}
	return nil
}

// nextHeader reads the framing of the next message: a message that fits
// is passed through, an oversize one is dropped and answered.
func (g *frameGuard) nextHeader() error {
	first, err := g.br.Peek(1)
	if err != nil {
		return err
	}
	lenNib, tkl := first[0]>>4, int(first[0]&0x0f)
	ext := map[byte]int{13: 1, 14: 2, 15: 4}[lenNib]
	hdr, err := g.br.Peek(1 + ext + 1 + tkl)
	if err != nil {
		return err
	}
	var optLen uint64
	switch lenNib {
	case 13:
		optLen = 13 + uint64(hdr[1])
	case 14:
		optLen = 269 + uint64(binary.BigEndian.Uint16(hdr[1:3]))
	case 15:
		optLen = 65805 + uint64(binary.BigEndian.Uint32(hdr[1:5]))
	default:
		optLen = uint64(lenNib)
	}
	hdrLen := 1 + ext + 1 + tkl
	total := uint64(hdrLen) + optLen
	if total <= uint64(g.maxMsg) || tkl > message.MaxTokenSize {
		// go-coap reads it (and refuses a reserved token length itself).
		g.pending = make([]byte, hdrLen)
		_, _ = io.ReadFull(g.br, g.pending)
		g.remain = optLen
		return nil
	}
	code := codes.Code(hdr[1+ext])
	token := append(message.Token(nil), hdr[2+ext:hdrLen]...)
	if _, err := g.br.Discard(hdrLen); err != nil {
		return err
	}
	if code < codes.GET || code > 31 {
		return fmt.Errorf("%w: %d bytes, code %v", errOversizeSignal, total, code)
	}
	g.discard = optLen
	if g.onRefuse != nil {
		g.onRefuse(optLen)
	}
	g.reply, err = tooLargeFrame(token, optLen, g.maxBody)
	return err
}

// tooLargeFrame encodes a CoAP-over-TCP 4.13 with Size1 and a diagnostic.
func tooLargeFrame(token message.Token, size uint64, limit int64) ([]byte, error) {
	opts, _, err := message.Options{}.SetContentFormat(make([]byte, 4), message.TextPlain)
	if err != nil {
		return nil, fmt.Errorf("4.13 options: %w", err)
	}
	opts, _, err = opts.SetUint32(make([]byte, 4), message.Size1, uint32(limit))
	if err != nil {
		return nil, fmt.Errorf("4.13 options: %w", err)
	}
	m := message.Message{Token: token, Code: codes.RequestEntityTooLarge, Options: opts,
		Payload: []byte(tooLargeDiag(int64(size), limit))}
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return nil, fmt.Errorf("4.13 size: %w", err)
	}
	out := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, out); err != nil {
		return nil, fmt.Errorf("4.13 encode: %w", err)
	}
	return out, nil
}
