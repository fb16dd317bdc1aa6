package dotsserver

import "encoding/binary"

// DTLS 1.2 wire constants (RFC 6347 §4.1, §4.2.2, §4.3.2).
const (
	dtlsRecordHeaderLen    = 13
	dtlsHandshakeHeaderLen = 12

	dtlsContentChangeCipherSpec = 20
	dtlsContentHandshake        = 22
	dtlsContentApplicationData  = 23

	dtlsClientHello        = 1
	dtlsHelloVerifyRequest = 3
)

// dtlsHello is what the gate reads from a datagram whose first record
// carries the start of a ClientHello. The slices alias the datagram.
type dtlsHello struct {
	recordSeq  []byte // the record's epoch and sequence number, 8 bytes
	messageSeq uint16
	fixed      []byte // client_version, random, session_id
	cookie     []byte
	offer      []byte // cipher_suites and compression_methods; whole messages only
	whole      bool   // the message is in this one fragment
}

// random is the ClientHello's random (after client_version).
func (h dtlsHello) random() []byte { return h.fixed[2:34] }

// parseClientHello reads the first record of a datagram: a plaintext
// (epoch 0) handshake record holding the first fragment of a ClientHello,
// far enough to read its cookie, and in a whole message the offer after
// it. Anything else reports false.
func parseClientHello(pkt []byte) (dtlsHello, bool) {
	body, hs, ok := firstHandshake(pkt)
	if !ok || hs[0] != dtlsClientHello || fragmentOffset(hs) != 0 {
		return dtlsHello{}, false
	}
	// client_version(2) random(32) session_id<0..32> cookie<0..255>
	// cipher_suites<2..2^16-2> compression_methods<1..2^8-1>
	if len(body) < 2+32+1 || body[0] != 0xfe {
		return dtlsHello{}, false
	}
	sid := int(body[34])
	if sid > 32 || len(body) < 35+sid+1 {
		return dtlsHello{}, false
	}
	h := dtlsHello{recordSeq: pkt[3:11], messageSeq: binary.BigEndian.Uint16(hs[4:6]), fixed: body[:35+sid]}
	p := body[35+sid:]
	n := int(p[0])
	if len(p) < 1+n {
		return dtlsHello{}, false
	}
	h.cookie, p = p[1:1+n], p[1+n:]
	h.whole = uint32(len(body)) == messageLength(hs)
	if !h.whole {
		return h, true
	}
	if len(p) < 2 {
		return dtlsHello{}, false
	}
	cs := 2 + int(binary.BigEndian.Uint16(p))
	if len(p) < cs+1 || len(p) < cs+1+int(p[cs]) {
		return dtlsHello{}, false
	}
	h.offer = p[:cs+1+int(p[cs])]
	return h, true
}

// helloVerifyRequest is the datagram that answers h with cookie: DTLS 1.0
// as server_version (RFC 6347 §4.2.1), the ClientHello's record sequence
// number (so that resent HelloVerifyRequests are not taken for replays,
// §4.2.1) and message_seq.
func helloVerifyRequest(h dtlsHello, cookie []byte) []byte {
	body := 3 + len(cookie)
	b := make([]byte, 0, dtlsRecordHeaderLen+dtlsHandshakeHeaderLen+body)
	b = append(b, dtlsContentHandshake, 0xfe, 0xff)
	b = append(b, h.recordSeq...)
	b = binary.BigEndian.AppendUint16(b, uint16(dtlsHandshakeHeaderLen+body))
	b = append(b, dtlsHelloVerifyRequest, 0, 0, byte(body))
	b = binary.BigEndian.AppendUint16(b, h.messageSeq)
	b = append(b, 0, 0, 0, 0, 0, byte(body))
	b = append(b, 0xfe, 0xff, byte(len(cookie)))
	return append(b, cookie...)
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
func hasChangeCipherSpec(pkt []byte) bool { return hasRecordOf(pkt, dtlsContentChangeCipherSpec) }

// hasRecordOf reports whether a datagram holds a record of the content type.
func hasRecordOf(pkt []byte, contentType byte) bool {
	for len(pkt) >= dtlsRecordHeaderLen {
		if pkt[0] == contentType {
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
