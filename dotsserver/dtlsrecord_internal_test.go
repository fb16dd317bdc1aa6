package dotsserver

import (
	"bytes"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

func marshalRecord(t testing.TB, seq uint16, msg handshake.Message) []byte {
	t.Helper()
	rec := &recordlayer.RecordLayer{Header: recordlayer.Header{Version: protocol.Version1_2},
		Content: &handshake.Handshake{Header: handshake.Header{MessageSequence: seq}, Message: msg}}
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseClientHello(t *testing.T) {
	hello := func(sid, cookie []byte) *handshake.MessageClientHello {
		return &handshake.MessageClientHello{Version: protocol.Version1_2, SessionID: sid, Cookie: cookie,
			CipherSuiteIDs: []uint16{0xc02b}, CompressionMethods: []*protocol.CompressionMethod{{}}}
	}
	full := marshalRecord(t, 1, hello([]byte("session"), []byte("cookie")))
	if h, ok := parseClientHello(fragment(t, full)); !ok || h.whole || string(h.cookie) != "cookie" {
		t.Errorf("first fragment: got %+v %v, want its cookie, not whole", h, ok)
	}
	for _, tc := range []struct {
		name   string
		pkt    []byte
		ok     bool
		seq    uint16
		cookie string
	}{
		{"no cookie", marshalRecord(t, 0, hello(nil, nil)), true, 0, ""},
		{"cut in the cipher suites", full[:len(full)-3], false, 0, ""},
		{"cookie and session id", full, true, 1, "cookie"},
		{"cut in the cookie", full[:len(full)-len("cookie")-8], false, 0, ""},
		{"record length past the datagram", append(append([]byte(nil), full[:11]...), 0xff, 0xff), false, 0, ""},
		{"not a handshake", append([]byte{23}, full[1:]...), false, 0, ""},
		{"epoch 1", append(append(append([]byte(nil), full[:3]...), 0, 1), full[5:]...), false, 0, ""},
		{"HelloVerifyRequest", marshalRecord(t, 0, &handshake.MessageHelloVerifyRequest{Version: protocol.Version1_2, Cookie: []byte("c")}), false, 0, ""},
		{"empty", nil, false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := parseClientHello(tc.pkt)
			if ok != tc.ok || ok && (h.messageSeq != tc.seq || string(h.cookie) != tc.cookie || !h.whole ||
				!bytes.Equal(h.offer, []byte{0, 2, 0xc0, 0x2b, 1, 0})) {
				t.Fatalf("got %+v %v, want seq %d cookie %q %v", h, ok, tc.seq, tc.cookie, tc.ok)
			}
		})
	}
}

// fragment makes a record's handshake message its first fragment of two.
func fragment(t *testing.T, rec []byte) []byte {
	t.Helper()
	b := append([]byte(nil), rec...)
	n := len(b) - 13 - 12 // message length
	b[13+9], b[13+10], b[13+11] = 0, byte((n-4)>>8), byte(n-4)
	b = b[:len(b)-4]
	b[11], b[12] = byte((len(b)-13)>>8), byte(len(b)-13)
	return b
}

// TestHelloVerifyRequest reads the gate's HelloVerifyRequest with pion's
// record and handshake parsers: DTLS 1.0 versions, the ClientHello's record
// sequence number and message_seq, the cookie.
func TestHelloVerifyRequest(t *testing.T) {
	ch := marshalRecord(t, 3, &handshake.MessageClientHello{Version: protocol.Version1_2,
		CipherSuiteIDs: []uint16{0xc02b}, CompressionMethods: []*protocol.CompressionMethod{{}}})
	ch[10] = 9 // record sequence number 9
	h, ok := parseClientHello(ch)
	if !ok || !bytes.Equal(h.offer, []byte{0, 2, 0xc0, 0x2b, 1, 0}) {
		t.Fatalf("ClientHello: %+v %v", h, ok)
	}
	pkt := helloVerifyRequest(h, []byte("0123456789abcdef0123456789abcdef"))
	var rec recordlayer.RecordLayer
	if err := rec.Unmarshal(pkt); err != nil {
		t.Fatalf("pion cannot read the HelloVerifyRequest: %v (% x)", err, pkt)
	}
	hs, ok := rec.Content.(*handshake.Handshake)
	if !ok {
		t.Fatalf("content %T", rec.Content)
	}
	hvr, ok := hs.Message.(*handshake.MessageHelloVerifyRequest)
	switch {
	case !ok:
		t.Fatalf("message %T", hs.Message)
	case rec.Header.SequenceNumber != 9 || rec.Header.Epoch != 0 || !rec.Header.Version.Equal(protocol.Version1_0):
		t.Errorf("record header %+v: want epoch 0, sequence number 9, DTLS 1.0", rec.Header)
	case hs.Header.MessageSequence != 3 || hs.Header.FragmentOffset != 0 || hs.Header.FragmentLength != hs.Header.Length:
		t.Errorf("handshake header %+v: want message_seq 3, one fragment", hs.Header)
	case !hvr.Version.Equal(protocol.Version1_0) || string(hvr.Cookie) != "0123456789abcdef0123456789abcdef":
		t.Errorf("HelloVerifyRequest %+v", hvr)
	}
	if len(pkt) >= len(ch) {
		t.Errorf("HelloVerifyRequest of %d bytes for a ClientHello of %d: the answer must not amplify", len(pkt), len(ch))
	}
}

func TestChangeCipherSpec(t *testing.T) {
	hvr := marshalRecord(t, 0, &handshake.MessageHelloVerifyRequest{Version: protocol.Version1_2, Cookie: []byte("0123456789")})
	if hasChangeCipherSpec(hvr) {
		t.Fatal("a HelloVerifyRequest is no ChangeCipherSpec")
	}
	ccs := []byte{20, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 1}
	if !hasChangeCipherSpec(append(append([]byte(nil), hvr...), ccs...)) {
		t.Fatal("ChangeCipherSpec after a handshake record not found")
	}
}

// FuzzParseDTLS: nothing a peer sends makes the record reader panic, what
// it returns lies within the datagram, and the HelloVerifyRequest for it
// is a record pion can read.
func FuzzParseDTLS(f *testing.F) {
	f.Add(marshalRecord(f, 0, &handshake.MessageClientHello{Version: protocol.Version1_2, Cookie: []byte("c"),
		CipherSuiteIDs: []uint16{0xc02b}, CompressionMethods: []*protocol.CompressionMethod{{}}}))
	f.Add(marshalRecord(f, 0, &handshake.MessageHelloVerifyRequest{Version: protocol.Version1_2, Cookie: []byte("c")}))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		_ = hasChangeCipherSpec(pkt)
		h, ok := parseClientHello(pkt)
		if !ok {
			return
		}
		for _, b := range [][]byte{h.cookie, h.offer, h.fixed} {
			if len(b) > 0 && !bytes.Contains(pkt, b) {
				t.Fatalf("%x not in the datagram", b)
			}
		}
		var rec recordlayer.RecordLayer
		if err := rec.Unmarshal(helloVerifyRequest(h, make([]byte, cookieLen))); err != nil {
			t.Fatalf("HelloVerifyRequest unreadable: %v", err)
		}
	})
}
