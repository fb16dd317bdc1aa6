package dotstest

import (
	"net"
	"testing"
)

// ListenSamePort opens a TCP listener and a UDP socket on 127.0.0.1 with
// the same port number, as a signal channel's address serves both DTLS and
// TLS (RFC 9132 §4.3); the caller closes them.
func ListenSamePort(t testing.TB) (net.Listener, net.PacketConn) {
	t.Helper()
	for i := 0; ; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := net.ListenPacket("udp", l.Addr().String())
		if err == nil {
			return l, p
		}
		l.Close()
		if i == 20 {
			t.Fatalf("no port free over both UDP and TCP: %v", err)
		}
	}
}
