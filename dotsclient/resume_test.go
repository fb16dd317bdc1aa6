package dotsclient

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/dots"
)

// TestResumeTLS: with a SessionCache a reconnection over TLS resumes the
// session from the server's ticket (TLS 1.3), and the server still knows
// the client: a mitigation made in the first session is the client's in
// the resumed one. Without the cache every handshake is a full one.
func TestResumeTLS(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, tc := range []struct {
		name        string
		cache       bool
		wantResumed bool
		mid         uint32
		prefix      string
	}{
		{"cache", true, true, 700, "203.0.113.70/32"},
		{"no cache", false, false, 701, "203.0.113.71/32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config(t, "alpha", e.addr)
			cfg.Transport = "tls"
			if tc.cache {
				cfg.Sessions = NewSessionCache(0)
			}
			mid := tc.mid
			c1, err := Dial(timeout(t, 10*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c1.Resumed() {
				t.Fatal("the first handshake resumed a session")
			}
			// The TLS 1.3 ticket arrives after the handshake; the first
			// answer has been read after it.
			r, err := c1.Mitigate(timeout(t, 5*time.Second), mid, dots.Scope{TargetPrefix: []string{tc.prefix}, Lifetime: dots.Ptr[int64](3600)})
			if err != nil || r.Code != dots.Created {
				t.Fatalf("mitigate: %v %+v", err, r)
			}
			c1.Close()

			c2, err := Dial(timeout(t, 10*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if got := c2.Resumed(); got != tc.wantResumed {
				t.Fatalf("second handshake resumed: %v, want %v", got, tc.wantResumed)
			}
			r, err = c2.Status(timeout(t, 5*time.Second), &mid, "")
			if err != nil || r.Code != dots.Content {
				t.Fatalf("status of the first session's mitigation: %v %+v", err, r)
			}
		})
	}
}

// TestResumeDTLSWithOpenSSL: against a DTLS server that resumes
// certificate-authenticated sessions (OpenSSL's s_server, client
// certificate required), a reconnection with a SessionCache resumes.
func TestResumeDTLSWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	e := newTestEnv(t, nil)
	for _, tc := range []struct {
		name        string
		cache       bool
		wantResumed bool
	}{
		{"cache", true, true},
		{"no cache", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, reused := opensslDTLSServer(t, e)
			cfg := e.config(t, "alpha", addr)
			cfg.Transport = "dtls"
			cfg.ServerName = "localhost"
			if tc.cache {
				cfg.Sessions = NewSessionCache(0)
			}
			for i := range 2 {
				c, err := Dial(timeout(t, 10*time.Second), cfg)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				want := i == 1 && tc.wantResumed
				if c.Resumed() != want {
					t.Fatalf("dial %d: resumed %v, want %v", i, c.Resumed(), want)
				}
				c.Close()
				if got := reused(i + 1); got != want {
					t.Fatalf("dial %d: s_server reused the session: %v, want %v", i, got, want)
				}
			}
		})
	}
}

// opensslDTLSServer runs openssl s_server for DTLS 1.2 with the server
// certificate of the test PKI, requiring a client certificate of its CA. It
// returns the address and a function telling whether the n-th connection
// (from 1) resumed a session, as s_server logs it.
func opensslDTLSServer(t *testing.T, e *testEnv) (string, func(n int) bool) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:"+strconv.Itoa(port),
		"-cert", e.dev.ServerCert, "-key", e.dev.ServerKey, "-CAfile", e.dev.CAPath, "-Verify", "2",
		"-verify_return_error", "-no_ticket")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	// s_server ends at the end of its input: keep it open.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() })
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu         sync.Mutex
		conns      []bool // per connection: reused
		reusedNext bool
		log        strings.Builder
		ready      = make(chan struct{})
	)
	go func() {
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			log.WriteString(line + "\n")
			switch {
			case strings.HasPrefix(line, "ACCEPT"):
				once.Do(func() { close(ready) })
			case strings.HasPrefix(line, "CIPHER is"):
				reusedNext = false
			case strings.HasPrefix(line, "Reused session-id"):
				reusedNext = true
			case strings.HasPrefix(line, "Secure Renegotiation"): // the last line of a connection's summary
				conns = append(conns, reusedNext)
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("s_server:\n%s", log.String())
			mu.Unlock()
		}
	})
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("s_server did not start")
	}
	return "127.0.0.1:" + strconv.Itoa(port), func(n int) bool {
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			if len(conns) >= n {
				r := conns[n-1]
				mu.Unlock()
				return r
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("s_server logged no connection %d", n)
		return false
	}
}

// TestDTLSSessionsBounded: the DTLS session store holds at most its size
// (least recently used out first) and offers a session for at most its
// lifetime.
func TestDTLSSessionsBounded(t *testing.T) {
	sess := func(id byte) piondtls.Session { return piondtls.Session{ID: []byte{id}} }
	for _, tc := range []struct {
		name    string
		run     func(d *dtlsSessions, advance func(time.Duration))
		present []string
		absent  []string
	}{
		{"oldest out at the bound", func(d *dtlsSessions, _ func(time.Duration)) {
			_ = d.Set([]byte("a"), sess(1))
			_ = d.Set([]byte("b"), sess(2))
			_ = d.Set([]byte("c"), sess(3))
		}, []string{"b", "c"}, []string{"a"}},
		{"a use keeps an entry", func(d *dtlsSessions, _ func(time.Duration)) {
			_ = d.Set([]byte("a"), sess(1))
			_ = d.Set([]byte("b"), sess(2))
			_, _ = d.Get([]byte("a"))
			_ = d.Set([]byte("c"), sess(3))
		}, []string{"a", "c"}, []string{"b"}},
		{"expired at its lifetime", func(d *dtlsSessions, advance func(time.Duration)) {
			_ = d.Set([]byte("a"), sess(1))
			advance(DTLSSessionLifetime - time.Second)
			_ = d.Set([]byte("b"), sess(2))
			advance(time.Second)
		}, []string{"b"}, []string{"a"}},
		{"deleted", func(d *dtlsSessions, _ func(time.Duration)) {
			_ = d.Set([]byte("a"), sess(1))
			_ = d.Del([]byte("a"))
		}, nil, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			d := NewSessionCache(2).dtls
			d.now = func() time.Time { return now }
			tc.run(d, func(dt time.Duration) { now = now.Add(dt) })
			for _, k := range tc.present {
				if s, err := d.Get([]byte(k)); err != nil || len(s.ID) == 0 {
					t.Errorf("%s: no session (%v)", k, err)
				}
			}
			for _, k := range tc.absent {
				if s, err := d.Get([]byte(k)); err != nil || len(s.ID) != 0 {
					t.Errorf("%s: session %x still offered (%v)", k, s.ID, err)
				}
			}
			if n := d.len(); n > 2 {
				t.Errorf("%d sessions held, bound 2", n)
			}
		})
	}
}
