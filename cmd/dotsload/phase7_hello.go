package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	piondtls "github.com/pion/dtls/v3"
)

// DTLS 1.2 ClientHello records (RFC 6347 §4.1 and §4.2.2; the body is
// RFC 5246 §7.4.1.2 with a cookie after the session id).
const (
	recordHeaderLen    = 13 // type, version, epoch, 48-bit sequence number, length
	handshakeHeaderLen = 12 // type, length, message_seq, fragment_offset, fragment_length
	contentHandshake   = 22
	typeClientHello    = 1
	// helloRandomOffset is where client_random starts in a ClientHello
	// record: after both headers and client_version.
	helloRandomOffset = recordHeaderLen + handshakeHeaderLen + 2
)

// clientHello is one unfragmented ClientHello in a DTLS record of epoch 0.
type clientHello struct {
	RecordVersion uint16 // record layer version (pion sends DTLS 1.0, 0xfeff, in its first flight)
	Sequence      uint64 // record sequence number (48 bits)
	MessageSeq    uint16
	Version       uint16 // client_version
	Random        [32]byte
	SessionID     []byte
	Cookie        []byte
	CipherSuites  []uint16
	Compression   []byte
	Extensions    []byte // the extensions, without their length; nil when absent
}

var errNotHello = errors.New("not a DTLS ClientHello record")

// helloReader reads the variable-length fields of a ClientHello body.
type helloReader struct {
	b   []byte
	err error
}

func (r *helloReader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = fmt.Errorf("%w: %s needs %d bytes, %d left", errNotHello, what, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *helloReader) vector(lenBytes int, what string) []byte {
	l := r.take(lenBytes, what+" length")
	if r.err != nil {
		return nil
	}
	n := int(l[0])
	if lenBytes == 2 {
		n = int(binary.BigEndian.Uint16(l))
	}
	return r.take(n, what)
}

// parseClientHello checks that b is exactly one DTLS record holding one
// unfragmented ClientHello of epoch 0, and returns its fields.
func parseClientHello(b []byte) (*clientHello, error) {
	if len(b) < recordHeaderLen+handshakeHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes", errNotHello, len(b))
	}
	if b[0] != contentHandshake {
		return nil, fmt.Errorf("%w: content type %d", errNotHello, b[0])
	}
	if epoch := binary.BigEndian.Uint16(b[3:5]); epoch != 0 {
		return nil, fmt.Errorf("%w: epoch %d", errNotHello, epoch)
	}
	if l := int(binary.BigEndian.Uint16(b[11:13])); l != len(b)-recordHeaderLen {
		return nil, fmt.Errorf("%w: record length %d, %d bytes follow the header", errNotHello, l, len(b)-recordHeaderLen)
	}
	hs := b[recordHeaderLen:]
	if hs[0] != typeClientHello {
		return nil, fmt.Errorf("%w: handshake type %d", errNotHello, hs[0])
	}
	length, offset, fragment := uint24(hs[1:4]), uint24(hs[6:9]), uint24(hs[9:12])
	if offset != 0 || fragment != length || length != len(hs)-handshakeHeaderLen {
		return nil, fmt.Errorf("%w: fragment %d+%d of %d in %d bytes", errNotHello, offset, fragment, length, len(hs)-handshakeHeaderLen)
	}
	h := &clientHello{
		RecordVersion: binary.BigEndian.Uint16(b[1:3]),
		Sequence:      uint64(binary.BigEndian.Uint16(b[5:7]))<<32 | uint64(binary.BigEndian.Uint32(b[7:11])),
		MessageSeq:    binary.BigEndian.Uint16(hs[4:6]),
	}
	r := &helloReader{b: hs[handshakeHeaderLen:]}
	if v := r.take(2, "client_version"); v != nil {
		h.Version = binary.BigEndian.Uint16(v)
	}
	copy(h.Random[:], r.take(32, "random"))
	h.SessionID = r.vector(1, "session_id")
	h.Cookie = r.vector(1, "cookie")
	suites := r.vector(2, "cipher_suites")
	h.Compression = r.vector(1, "compression_methods")
	if r.err == nil && len(r.b) > 0 {
		h.Extensions = r.vector(2, "extensions")
		if r.err == nil && len(r.b) > 0 {
			r.err = fmt.Errorf("%w: %d bytes after the extensions", errNotHello, len(r.b))
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(suites)%2 != 0 || len(suites) == 0 || len(h.Compression) == 0 {
		return nil, fmt.Errorf("%w: %d bytes of cipher suites, %d compression methods", errNotHello, len(suites), len(h.Compression))
	}
	for i := 0; i < len(suites); i += 2 {
		h.CipherSuites = append(h.CipherSuites, binary.BigEndian.Uint16(suites[i:]))
	}
	return h, nil
}

func uint24(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

func putUint24(b []byte, v int) { b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v) }

// marshal renders h as one DTLS record (parseClientHello's inverse).
func (h *clientHello) marshal() []byte {
	body := binary.BigEndian.AppendUint16(nil, h.Version)
	body = append(body, h.Random[:]...)
	body = append(append(body, byte(len(h.SessionID))), h.SessionID...)
	body = append(append(body, byte(len(h.Cookie))), h.Cookie...)
	body = binary.BigEndian.AppendUint16(body, uint16(2*len(h.CipherSuites)))
	for _, s := range h.CipherSuites {
		body = binary.BigEndian.AppendUint16(body, s)
	}
	body = append(append(body, byte(len(h.Compression))), h.Compression...)
	if h.Extensions != nil {
		body = binary.BigEndian.AppendUint16(body, uint16(len(h.Extensions)))
		body = append(body, h.Extensions...)
	}
	out := make([]byte, recordHeaderLen+handshakeHeaderLen, recordHeaderLen+handshakeHeaderLen+len(body))
	out[0] = contentHandshake
	binary.BigEndian.PutUint16(out[1:3], h.RecordVersion)
	binary.BigEndian.PutUint16(out[5:7], uint16(h.Sequence>>32))
	binary.BigEndian.PutUint32(out[7:11], uint32(h.Sequence))
	binary.BigEndian.PutUint16(out[11:13], uint16(handshakeHeaderLen+len(body)))
	hs := out[recordHeaderLen:]
	hs[0] = typeClientHello
	putUint24(hs[1:4], len(body))
	binary.BigEndian.PutUint16(hs[4:6], h.MessageSeq)
	putUint24(hs[9:12], len(body))
	return append(out, body...)
}

// captureClientHello starts a pion DTLS client configured as dotsclient
// configures it (certificate, roots, extended master secret required)
// towards a local UDP socket that never answers, and returns the first
// datagram it sends: its ClientHello without a cookie. The client is
// stopped at once.
func captureClientHello(ctx context.Context, cert tls.Certificate, roots *x509.CertPool) ([]byte, error) {
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	dc, err := piondtls.ClientWithOptions(pc, sink.LocalAddr(),
		piondtls.WithCertificates(cert), piondtls.WithRootCAs(roots), piondtls.WithServerName("127.0.0.1"),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	go func() { _ = dc.HandshakeContext(hctx) }()
	if err := sink.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	buf := make([]byte, 2048)
	n, _, err := sink.ReadFrom(buf)
	if err != nil {
		return nil, fmt.Errorf("no ClientHello from the pion client: %w", err)
	}
	if _, err := parseClientHello(buf[:n]); err != nil {
		return nil, fmt.Errorf("pion's first datagram: %w", err)
	}
	return buf[:n], nil
}
