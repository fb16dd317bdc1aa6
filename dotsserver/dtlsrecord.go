package dotsserver

import (
	"bytes"
	"encoding/binary"
)

// DTLS 1.2 wire constants (RFC 6347 §4.1, §4.2.2, §4.3.2).
const (
	dtlsRecordHeaderLen    = 13
	dtlsHandshakeHeaderLen = 12

	dtlsContentChangeCipherSpec = 20
	dtlsContentHandshake        = 22

	dtlsClientHello        = 1
	dtlsHelloVerifyRequest = 3
)

// dtlsHello is what the gate reads from a datagram whose first record
// carries the start of a ClientHello.
type dtlsHello struct {
	messageSeq uint16
	cookie     []byte // aliases the datagram
	whole      bool   // the message is in this one fragment
}

// parseClientHello reads the first record of a datagram: a plaintext
// (epoch 0) handshake record holding the first fragment of a ClientHello,
// far enough to read its cookie. Anything else reports false.
func parseClientHello(pkt []byte) (dtlsHello, bool) {
	body, hs, ok := firstHandshake(pkt)
	if !ok || hs[0] != dtlsClientHello || fragmentOffset(hs) != 0 {
		return dtlsHello{}, false
	}
	// client_version(2) random(32) session_id<0..32> cookie<0..255>
	if len(body) < 2+32+1 || body[0] != 0xfe {
		return dtlsHello{}, false
	}
	p := body[34:]
	sid := int(p[0])
	if sid > 32 || len(p) < 1+sid+1 {
		return dtlsHello{}, false
	}
	p = p[1+sid:]
	n := int(p[0])
	if len(p) < 1+n {
		return dtlsHello{}, false
	}
	whole := uint32(len(body)) == messageLength(hs)
	return dtlsHello{messageSeq: binary.BigEndian.Uint16(hs[4:6]), cookie: p[1 : 1+n], whole: whole}, true
}

// parseHelloVerifyCookie returns the cookie of a HelloVerifyRequest that
// starts a datagram.
func parseHelloVerifyCookie(pkt []byte) ([]byte, bool) {
	body, hs, ok := firstHandshake(pkt)
	if !ok || hs[0] != dtlsHelloVerifyRequest || fragmentOffset(hs) != 0 {
		return nil, false
	}
	// server_version(2) cookie<0..255>
	if len(body) < 3 || len(body) < 3+int(body[2]) {
		return nil, false
	}
	return body[3 : 3+int(body[2])], true
}

// firstHandshake returns the fragment and the handshake header of the first
// record of pkt when it is an epoch-0 handshake record.
func firstHandshake(pkt []byte) (frag, hs []byte, ok bool) {
	if len(pkt) < dtlsRecordHeaderLen+dtlsHandshakeHeaderLen || pkt[0] != dtlsContentHandshake || pkt[1] != 0xfe {
		return nil, nil, false
	}
	if binary.BigEndian.Uint16(pkt[3:5]) != 0 { // epoch
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(pkt[11:13]))
	rec := pkt[dtlsRecordHeaderLen:]
	if n > len(rec) || n < dtlsHandshakeHeaderLen {
		return nil, nil, false
	}
	rec = rec[:n]
	hs = rec[:dtlsHandshakeHeaderLen]
	fl := int(uint32(hs[9])<<16 | uint32(hs[10])<<8 | uint32(hs[11]))
	frag = rec[dtlsHandshakeHeaderLen:]
	if fl < len(frag) {
		frag = frag[:fl]
	}
	return frag, hs, true
}

func messageLength(hs []byte) uint32 { return uint32(hs[1])<<16 | uint32(hs[2])<<8 | uint32(hs[3]) }

func fragmentOffset(hs []byte) uint32 {
	return uint32(hs[6])<<16 | uint32(hs[7])<<8 | uint32(hs[8])
}

// hasChangeCipherSpec reports whether a datagram holds a ChangeCipherSpec
// record: sent by the server, it ends a full handshake on its side (the
// client's Finished has been verified, RFC 5246 §7.3 flight order).
func hasChangeCipherSpec(pkt []byte) bool {
	for len(pkt) >= dtlsRecordHeaderLen {
		if pkt[0] == dtlsContentChangeCipherSpec {
			return true
		}
		n := dtlsRecordHeaderLen + int(binary.BigEndian.Uint16(pkt[11:13]))
		if n > len(pkt) {
			return false
		}
		pkt = pkt[n:]
	}
	return false
}

// sameCookie compares a ClientHello's cookie with the one sent.
func sameCookie(got, sent []byte) bool { return len(sent) > 0 && bytes.Equal(got, sent) }
