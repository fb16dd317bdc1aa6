package dotsserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/pki"
)

// memSessions is a pion SessionStore in memory.
type memSessions struct {
	mu   sync.Mutex
	m    map[string]piondtls.Session
	sets int
}

func (s *memSessions) Set(k []byte, v piondtls.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[string(k)] = v
	s.sets++
	return nil
}

func (s *memSessions) Get(k []byte) (piondtls.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[string(k)], nil
}

func (s *memSessions) Del(k []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(k))
	return nil
}

// TestDTLSGateAbbreviatedHandshake: an abbreviated handshake (session
// resumption) runs through the gate with pion as patched: a pion server
// that resumes sessions (without client authentication, which pion does
// not resume; the signal channel itself refuses resumption) answers a
// resuming client behind the stateless cookie exchange. The gate ends a
// full handshake with the server's ChangeCipherSpec, but an abbreviated
// one, where that comes before the client has proved anything, only with
// the client's first application data.
//
// With a client certificate required, as on the signal channel, pion
// does not resume even with a session store (it drops the session id
// when the client's certificate arrives): every handshake is full. Should
// a pion release resume such sessions, this case fails, and the identity
// of a resumed session (peerLeaf) must be checked before resumption is
// allowed.
func TestDTLSGateAbbreviatedHandshake(t *testing.T) {
	for _, tc := range []struct {
		name        string
		clientCert  bool
		wantResumed bool
	}{
		{"no client certificate", false, true},
		{"client certificate required", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) { testGateResumption(t, tc.clientCert, tc.wantResumed) })
	}
}

func testGateResumption(t *testing.T, clientCert, wantResumed bool) {
	dev, err := pki.Dev(filepath.Join(t.TempDir(), "pki"), []string{"alpha"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := pki.LoadKeyPair(dev.ServerCert, dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	serverOpts := []piondtls.ServerOption{piondtls.WithCertificates(cert), piondtls.WithCipherSuites(dtlsCipherSuites...),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		piondtls.WithSessionStore(&memSessions{m: map[string]piondtls.Session{}})}
	clientOpts := []piondtls.ClientOption{piondtls.WithRootCAs(roots), piondtls.WithServerName("localhost"),
		piondtls.WithCipherSuites(dtlsCipherSuites...), piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret)}
	if clientCert {
		ccert, _, err := pki.LoadKeyPair(dev.Clients["alpha"].Cert, dev.Clients["alpha"].Key)
		if err != nil {
			t.Fatal(err)
		}
		serverOpts = append(serverOpts, piondtls.WithClientAuth(piondtls.RequireAndVerifyClientCert), piondtls.WithClientCAs(roots))
		clientOpts = append(clientOpts, piondtls.WithCertificates(ccert))
	}
	l, err := newDTLSListener(pc, DTLSLimits{}, log, newRateLog(log, time.Now, 10*time.Second), serverOpts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); l.Close(); wg.Wait() })
	wg.Add(1)
	go func() { // an echo server
		defer wg.Done()
		for {
			c, err := l.AcceptWithContext(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 1500)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()

	clientSessions := &memSessions{m: map[string]piondtls.Session{}}
	var first []byte
	for i, resumed := range []bool{false, wantResumed} {
		dc, err := piondtls.DialWithOptions("udp", l.Addr().(*net.UDPAddr), append(clientOpts, piondtls.WithSessionStore(clientSessions))...)
		if err != nil {
			t.Fatal(err)
		}
		hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
		err = dc.HandshakeContext(hctx)
		hcancel()
		if err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		st, _ := dc.ConnectionState()
		if i == 0 {
			first = bytes.Clone(st.SessionID)
		}
		if got := len(first) > 0 && i > 0 && bytes.Equal(st.SessionID, first); got != resumed {
			t.Fatalf("handshake %d resumed %v, want %v (session ids %x, %x)", i, got, resumed, first, st.SessionID)
		}
		// A full handshake has ended with the server's last flight, which
		// the client has read; an abbreviated one waits for the client.
		want := 0
		if resumed {
			want = 1
		}
		if got := l.gate.Stats().Handshakes; got != want {
			t.Fatalf("handshake %d (resumed %v): the gate counts %d handshakes in progress, want %d", i, resumed, got, want)
		}
		if _, err := dc.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		_ = dc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := dc.Read(buf); err != nil || string(buf[:n]) != "ping" {
			t.Fatalf("echo %d: %q, %v", i, buf[:n], err)
		}
		if st := l.gate.Stats(); st.Handshakes != 0 || st.Completed != uint64(i+1) {
			t.Fatalf("after data %d: %d handshakes in progress, %d completed", i, st.Handshakes, st.Completed)
		}
		dc.Close()
	}
}
