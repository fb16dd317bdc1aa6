package dotsserver

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/tcp/coder"
)

func tcpFrame(t testing.TB, code codes.Code, token string, payload int) []byte {
	t.Helper()
	m := message.Message{Code: code, Token: message.Token(token), Payload: bytes.Repeat([]byte{'x'}, payload)}
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// streamConn is a net.Conn that reads from a fixed stream, a few bytes at a
// time, and records what is written to it.
type streamConn struct {
	net.Conn
	in    *bytes.Reader
	chunk int
	out   bytes.Buffer
}

func (c *streamConn) Read(p []byte) (int, error) {
	if len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.in.Read(p)
}
func (c *streamConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// TestFrameGuard: messages within the bound pass through byte for byte,
// however the stream is cut; an oversize request is dropped and answered
// 4.13 with its token and Size1; an oversize non-request ends the stream.
func TestFrameGuard(t *testing.T) {
	const maxMsg, maxBody = 2048, 1024
	small := tcpFrame(t, codes.PUT, "ab", 100)
	big := tcpFrame(t, codes.PUT, "cd", 100000)
	csm := tcpFrame(t, codes.CSM, "", 0)
	bigResp := tcpFrame(t, codes.Content, "ef", 70000)
	tests := []struct {
		name    string
		stream  [][]byte
		pass    []byte
		replies []string // tokens answered 4.13
		err     error
	}{
		{"small frames pass", [][]byte{csm, small, small}, bytes.Join([][]byte{csm, small, small}, nil), nil, io.EOF},
		{"oversize request between two", [][]byte{small, big, small}, bytes.Join([][]byte{small, small}, nil), []string{"cd"}, io.EOF},
		{"oversize response ends it", [][]byte{small, bigResp, small}, small, nil, errOversizeSignal},
	}
	for _, tc := range tests {
		for _, chunk := range []int{1, 7, 4096, 1 << 20} {
			c := &streamConn{in: bytes.NewReader(bytes.Join(tc.stream, nil)), chunk: chunk}
			g := newFrameGuard(c, maxMsg, maxBody, nil)
			got, err := io.ReadAll(io.LimitReader(g, 1<<22))
			if err == nil {
				err = io.EOF
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("%s (chunk %d): error %v, want %v", tc.name, chunk, err, tc.err)
			}
			if !bytes.Equal(got, tc.pass) {
				t.Fatalf("%s (chunk %d): passed %d bytes, want %d", tc.name, chunk, len(got), len(tc.pass))
			}
			var tokens []string
			for rest := c.out.Bytes(); len(rest) > 0; {
				m := message.Message{Options: make(message.Options, 0, 4)}
				n, err := coder.DefaultCoder.Decode(rest, &m)
				if err != nil {
					t.Fatalf("%s: reply: %v", tc.name, err)
				}
				rest = rest[n:]
				if size1, _ := m.Options.GetUint32(message.Size1); m.Code != codes.RequestEntityTooLarge || size1 != maxBody || len(m.Payload) == 0 {
					t.Fatalf("%s: reply %v Size1 %d payload %q", tc.name, m.Code, size1, m.Payload)
				}
				tokens = append(tokens, string(m.Token))
			}
			if len(tokens) != len(tc.replies) || len(tokens) > 0 && tokens[0] != tc.replies[0] {
				t.Fatalf("%s (chunk %d): 4.13 to %q, want %q", tc.name, chunk, tokens, tc.replies)
			}
		}
	}
}

// FuzzFrameGuard: whatever the stream, the guard neither panics nor
// passes more than it read, and a stream of messages within the bound
// comes through unchanged.
func FuzzFrameGuard(f *testing.F) {
	f.Add(tcpFrame(f, codes.PUT, "ab", 10), 3)
	f.Add(append(tcpFrame(f, codes.PUT, "cd", 5000), tcpFrame(f, codes.GET, "x", 0)...), 100)
	f.Add([]byte{0xf8, 0xff, 0xff, 0xff, 0xff, 0x03}, 1)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		chunk = 1 + abs(chunk)%4096
		c := &streamConn{in: bytes.NewReader(data), chunk: chunk}
		got, _ := io.ReadAll(newFrameGuard(c, 4096, 1024, nil))
		if len(got) > len(data) {
			t.Fatalf("passed %d bytes of %d", len(got), len(data))
		}
		if c.out.Len() == 0 && !bytes.HasPrefix(data, got) {
			t.Fatal("nothing refused, yet the output is not a prefix of the input")
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
