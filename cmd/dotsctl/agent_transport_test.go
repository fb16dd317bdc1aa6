package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// useServers points e's dotsctl configuration at servers.
func (e *ctlEnv) useServers(t *testing.T, servers ...string) {
	t.Helper()
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(b), "\n")
	if !strings.HasPrefix(first, "servers:") {
		t.Fatalf("%s does not start with servers:", e.config)
	}
	yml := "servers: [\"" + strings.Join(servers, "\", \"") + "\"]\n" + rest
	if err := os.WriteFile(e.config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fastReprobe makes the agent probe DTLS every d during the test.
func fastReprobe(t *testing.T, d time.Duration) {
	old := agentReprobeEvery
	agentReprobeEvery = d
	t.Cleanup(func() { agentReprobeEvery = old })
}

// TestAgentReprobesDTLS: an agent whose session fell back to TLS (UDP
// blocked) probes DTLS again and again (RFC 9132 §4.3); once UDP passes it
// moves to DTLS, and serves commands over it.
func TestAgentReprobesDTLS(t *testing.T) {
	fastReprobe(t, 300*time.Millisecond)
	e := newCtlEnv(t)
	f := newUDPFront(t, e.addr)
	e.useServers(t, f.addr)
	a := startAgent(t, e)
	contains(t, "agent output", a.out.String(), "session up over tls to "+f.addr)
	waitWithin(t, "a failed probe", a.errOut, "DTLS still fails, staying on TLS", 10*time.Second)
	handshakes := e.srv.Srv.DTLSStats().Completed
	f.open.Store(true)
	waitWithin(t, "the move", a.out, "session moved to dtls to "+f.addr, 10*time.Second)
	if n := e.srv.Srv.DTLSStats().Completed - handshakes; n != 1 {
		t.Errorf("%d DTLS handshakes for the move, want 1", n)
	}
	contains(t, "mitigate over the agent", e.ok(t, "mitigate", "--target", "203.0.113.23/32"), "mid 1 created")
	if n := e.srv.Srv.DTLSStats().Completed - handshakes; n != 1 {
		t.Errorf("the command opened a session of its own (%d DTLS handshakes), want the agent's", n)
	}
	if s := a.errOut.String(); strings.Contains(s, "reconnecting") {
		t.Errorf("the agent lost its session:\n%s", s)
	}
}

// TestAgentDialerCachesTransport: once Happy Eyeballs fell back to TLS, the
// agent's next dial to the same servers goes to TLS at once without a
// DTLS attempt (RFC 9132 §4.3 allows caching the outcome); a successful
// DTLS probe makes DTLS first again.
func TestAgentDialerCachesTransport(t *testing.T) {
	e := newCtlEnv(t)
	f := newUDPFront(t, e.addr)
	e.useServers(t, f.addr)
	d := newAgentDialer(&globals{config: e.config, timeout: 5 * time.Second, stderr: io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	transport := func(what string, want string) {
		t.Helper()
		c, _, err := d.dial(ctx, false)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer c.Close()
		if c.Transport() != want {
			t.Fatalf("%s: over %s, want %s", what, c.Transport(), want)
		}
	}
	transport("first dial, UDP blocked", "tls")
	if f.dropped.Load() == 0 {
		t.Fatal("the first dial tried no DTLS")
	}
	dropped := f.dropped.Load()
	transport("second dial", "tls")
	if n := f.dropped.Load() - dropped; n != 0 {
		t.Errorf("the second dial sent %d datagrams, want none (TLS known good)", n)
	}
	f.open.Store(true)
	cc, err := d.config(false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.probeDTLS(ctx, cc)
	if err != nil {
		t.Fatalf("DTLS probe with UDP open: %v", err)
	}
	c.Close()
	transport("dial after the probe", "dtls")
}
