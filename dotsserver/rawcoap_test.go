package dotsserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	tcpCoder "github.com/plgd-dev/go-coap/v3/tcp/coder"
	udpCoder "github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/levee-dots/levee/dots"
)

// rawConn speaks CoAP message by message over a real DTLS or TLS session,
// so a test can send what a well-behaved client library never would
// (a Block1 announcing 100 MB, a 100 KiB message in one TCP frame).
type rawConn struct {
	t         testing.TB
	transport string
	cuid      string
	dc        *piondtls.Conn
	tc        *tls.Conn
	br        *bufio.Reader
	mid       atomic.Int32
	tok       atomic.Uint32
}

func dialRaw(t testing.TB, e *env, name, transport string) *rawConn {
	t.Helper()
	cert := e.ClientCert(t, name)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{t: t, transport: transport, cuid: dots.CUIDFromSPKI(leaf.RawSubjectPublicKeyInfo)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch transport {
	case "dtls":
		raddr, err := net.ResolveUDPAddr("udp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		dc, err := piondtls.DialWithOptions("udp", raddr, piondtls.WithCertificates(cert), piondtls.WithRootCAs(e.roots),
			piondtls.WithServerName("localhost"), piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))
		if err != nil {
			t.Fatalf("DTLS dial: %v", err)
		}
		if err := dc.HandshakeContext(ctx); err != nil {
			dc.Close()
			t.Fatalf("DTLS handshake: %v", err)
		}
		rc.dc = dc
	default:
		d := tls.Dialer{Config: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: e.roots, ServerName: "localhost",
			MinVersion: tls.VersionTLS12, NextProtos: []string{"coap"}}}
		nc, err := d.DialContext(ctx, "tcp", e.addr)
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		rc.tc = nc.(*tls.Conn)
		rc.br = bufio.NewReader(rc.tc)
		// CSM announcing block-wise transfer (RFC 8323 §5.3.2)
		rc.send(message.Message{Code: codes.CSM, Options: message.Options{{ID: message.TCPBlockWiseTransfer}}})
	}
	t.Cleanup(rc.close)
	return rc
}

func (rc *rawConn) close() {
	if rc.dc != nil {
		_ = rc.dc.Close()
	}
	if rc.tc != nil {
		_ = rc.tc.Close()
	}
}

func (rc *rawConn) send(m message.Message) {
	rc.t.Helper()
	var b []byte
	var err error
	if rc.dc != nil {
		if m.Type < 0 || m.Type == 0 && m.MessageID == 0 {
			m.Type = message.Confirmable
		}
		m.MessageID = rc.mid.Add(1)
		b, err = encode(udpCoder.DefaultCoder, m)
		if err == nil {
			_, err = rc.dc.Write(b)
		}
	} else {
		b, err = encode(tcpCoder.DefaultCoder, m)
		if err == nil {
			_, err = rc.tc.Write(b)
		}
	}
	if err != nil {
		rc.t.Fatalf("send %v: %v", m.Code, err)
	}
}

type coder interface {
	Size(message.Message) (int, error)
	Encode(message.Message, []byte) (int, error)
}

func encode(c coder, m message.Message) ([]byte, error) {
	n, err := c.Size(m)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err = c.Encode(m, b)
	return b, err
}

// recv returns the next message carrying token; it answers the server's
// heartbeats and skips signals.
func (rc *rawConn) recv(token message.Token) (message.Message, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := rc.read(deadline)
		if err != nil {
			return m, err
		}
		if string(m.Token) == string(token) && m.Code >= codes.Created && m.Code < codes.CSM {
			return m, nil
		}
		if m.Code == codes.PUT { // the server's heartbeat
			rc.send(message.Message{Code: codes.Changed, Token: m.Token, Type: message.Acknowledgement})
		}
	}
}

func (rc *rawConn) read(deadline time.Time) (message.Message, error) {
	m := message.Message{Options: make(message.Options, 0, 32)}
	if rc.dc != nil {
		_ = rc.dc.SetReadDeadline(deadline)
		buf := make([]byte, 65536)
		n, err := rc.dc.Read(buf)
		if err != nil {
			return m, err
		}
		_, err = udpCoder.DefaultCoder.Decode(buf[:n], &m)
		return m, err
	}
	_ = rc.tc.SetReadDeadline(deadline)
	for size := 1; ; {
		b, err := rc.br.Peek(size)
		if err != nil {
			return m, err
		}
		var h tcpCoder.MessageHeader
		if _, err := tcpCoder.DefaultCoder.DecodeHeader(b, &h); err != nil {
			if !errors.Is(err, message.ErrShortRead) {
				return m, err
			}
			size++
			continue
		}
		b = make([]byte, h.MessageLength)
		if _, err := ioReadFull(rc.br, b); err != nil {
			return m, err
		}
		_, err = tcpCoder.DefaultCoder.Decode(b, &m)
		return m, err
	}
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// token returns a fresh token.
func (rc *rawConn) token() message.Token {
	v := rc.tok.Add(1)
	return message.Token{0x7e, byte(v >> 16), byte(v >> 8), byte(v)}
}

// uintOpt encodes a CoAP uint option value.
func uintOpt(id message.OptionID, v uint32) message.Option {
	b := make([]byte, 4)
	n, _ := message.EncodeUint32(b, v)
	return message.Option{ID: id, Value: b[:n]}
}

// mitigatePut is a PUT /mitigate/cuid/mid with the given extra options
// (sorted by option number) and payload.
func (rc *rawConn) mitigatePut(tok message.Token, mid uint32, extra []message.Option, payload []byte) message.Message {
	var opts message.Options
	for _, seg := range []string{".well-known", "dots", "mitigate", "cuid=" + rc.cuid, fmt.Sprintf("mid=%d", mid)} {
		opts = append(opts, message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	opts = append(opts, uintOpt(message.ContentFormat, dots.ContentFormat))
	opts = append(opts, extra...)
	return message.Message{Code: codes.PUT, Token: tok, Options: opts, Payload: payload}
}

// roundTrip sends m and returns the answer to its token.
func (rc *rawConn) roundTrip(t testing.TB, m message.Message) message.Message {
	t.Helper()
	rc.send(m)
	resp, err := rc.recv(m.Token)
	if err != nil {
		t.Fatalf("%v: no answer: %v", m.Code, err)
	}
	return resp
}

// blockOpt is a Block1 value: NUM, M, SZX (RFC 7959 §2.2).
func blockOpt(id message.OptionID, num uint32, more bool, szx uint32) message.Option {
	v := num<<4 | szx
	if more {
		v |= 8
	}
	return uintOpt(id, v)
}

func optUint(m message.Message, id message.OptionID) (uint32, bool) {
	v, err := m.Options.GetUint32(id)
	return v, err == nil
}

func diagOf(m message.Message) string { return strings.TrimSpace(string(m.Payload)) }

// get is a GET on /.well-known/dots/<segs...>, with Observe if obs >= 0.
func (rc *rawConn) get(tok message.Token, obs int, segs ...string) message.Message {
	var opts message.Options
	if obs >= 0 {
		opts = append(opts, uintOpt(message.Observe, uint32(obs)))
	}
	for _, seg := range append([]string{".well-known", "dots"}, segs...) {
		opts = append(opts, message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	return message.Message{Code: codes.GET, Token: tok, Options: opts}
}

// closedByServer waits until the server ends the session.
func (rc *rawConn) closedByServer(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := rc.read(deadline); err != nil {
			return
		}
	}
	t.Fatal("the server did not close the session")
}
