package dotsclient

import (
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	tcpcoder "github.com/plgd-dev/go-coap/v3/tcp/coder"

	"github.com/levee-dots/levee/pki"
)

// TestStrayResponseNotAnswered: a response from the server that answers no
// request of the client is rejected and not answered with a response (RFC
// 7252 §5.3.2); a client answering it with 4.04 would start an endless
// exchange with a server that does the same (before this was fixed, the
// 4.04 also left the session deaf: the heartbeat after it went
// unanswered). The server here is a plain TLS listener that writes such a
// response, then a heartbeat (no body: the client answers it all the
// same), and reads what the client sends back (RFC 8323 framing).
func TestStrayResponseNotAnswered(t *testing.T) {
	e := newTestEnv(t, nil)
	cert, err := tls.LoadX509KeyPair(e.dev.ServerCert, e.dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCertPool(e.dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var msgs []message.Message
	var wg sync.WaitGroup
	serve := func(conn net.Conn) {
		defer wg.Done()
		defer conn.Close()
		write := func(m message.Message) {
			b := make([]byte, 1024)
			n, err := tcpcoder.DefaultCoder.Encode(m, b)
			if err == nil {
				_, err = conn.Write(b[:n])
			}
			if err != nil {
				t.Errorf("server write: %v", err)
			}
		}
		write(message.Message{Code: codes.CSM})
		write(message.Message{Code: codes.Content, Token: []byte{0xde, 0xad, 0xbe, 0xef}})
		write(message.Message{Code: codes.PUT, Token: []byte{1}, Options: message.Options{{ID: message.URIPath, Value: []byte(".well-known")},
			{ID: message.URIPath, Value: []byte("dots")}, {ID: message.URIPath, Value: []byte("hb")}}})
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		var buf []byte
		tmp := make([]byte, 4096)
		for {
			n, err := conn.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for len(buf) > 0 {
				var m message.Message
				used, derr := tcpcoder.DefaultCoder.Decode(buf, &m)
				if derr != nil || used <= 0 {
					break
				}
				mu.Lock()
				msgs = append(msgs, m)
				mu.Unlock()
				buf = buf[used:]
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go serve(conn)
		}
	}()
	cfg := e.config(t, "alpha", ln.Addr().String())
	cfg.Transport = "tls"
	c, err := Dial(timeout(t, 5*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the client's answers, if any
	c.Close()
	ln.Close()
	wg.Wait()
	heartbeatAnswered := false
	for _, m := range msgs {
		switch {
		case string(m.Token) == "\xde\xad\xbe\xef":
			t.Errorf("the client answered the stray response with %v", m.Code)
		case string(m.Token) == "\x01" && m.Code == codes.Changed:
			heartbeatAnswered = true
		}
	}
	if !heartbeatAnswered {
		t.Fatalf("the heartbeat after the stray response was not answered with 2.04 (the test saw %d messages)", len(msgs))
	}
}
