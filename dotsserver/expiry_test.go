package dotsserver_test

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
)

// TestClientCertExpiry: a client certificate seen in a handshake that
// ends within 30 days (of the server's clock) is logged, once a day at
// most, over DTLS and TLS alike; one far from its end is not. The earliest
// end seen is exported.
func TestClientCertExpiry(t *testing.T) {
	clk := dotstest.NewClock()
	var logs logBuffer
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { clk.Install(o); o.Logger = logs.logger() })
	_, leaf, err := pki.LoadKeyPair(e.dev.Clients["alpha"].Cert, e.dev.Clients["alpha"].Key)
	if err != nil {
		t.Fatal(err)
	}
	warnings := func() int { return len(logs.lines("client certificate ends soon", "serial=")) }
	if _, ok := e.Srv.ClientCertNotAfter(); ok {
		t.Fatal("an end is exported before any handshake")
	}
	for _, step := range []struct {
		name      string
		to        time.Time // the server's clock
		transport string
		warnings  int
	}{
		{"far from its end", leaf.NotAfter.Add(-60 * 24 * time.Hour), "dtls", 0},
		{"10 days left", leaf.NotAfter.Add(-10 * 24 * time.Hour), "dtls", 1},
		{"again the same day, over TLS", leaf.NotAfter.Add(-10*24*time.Hour + time.Hour), "tls", 1},
		{"a day later", leaf.NotAfter.Add(-9*24*time.Hour + time.Hour), "tls", 2},
	} {
		if d := step.to.Sub(clk.Now()); d > 0 {
			clk.Advance(d)
		}
		c := e.client(t, "alpha", step.transport)
		expect(t, dots.Changed)(c.Heartbeat(ctx(t), true))
		c.Close()
		if n := warnings(); n != step.warnings {
			t.Fatalf("%s: %d warnings, want %d:\n%q", step.name, n, step.warnings, logs.lines("client certificate"))
		}
		if got, ok := e.Srv.ClientCertNotAfter(); !ok || !got.Equal(leaf.NotAfter) {
			t.Fatalf("%s: exported end %v (%v), want %v", step.name, got, ok, leaf.NotAfter)
		}
	}
}
