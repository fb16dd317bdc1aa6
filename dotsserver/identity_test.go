package dotsserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// logBuffer is a slog destination the server's goroutines may share.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines that contain every one of words.
func (b *logBuffer) lines(words ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		all := l != ""
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// refused reports whether a client with cert gets no working session over
// transport: the handshake fails, or (TLS 1.3, where the client finishes
// first) the first request does.
func refused(e *env, cert tls.Certificate, transport string) error {
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dotsclient.Dial(dctx, dotsclient.Config{Servers: []string{e.addr}, Certificate: cert, RootCAs: e.roots, Transport: transport})
	if err != nil {
		return nil
	}
	defer c.Close()
	if _, err := c.Status(dctx, nil, ""); err != nil {
		return nil
	}
	return errGotSession
}

var errGotSession = errors.New("the certificate got a session")

// TestUnmappedCertificateRefused: a certificate of the configured CA whose
// name maps to no client domain (gamma) is refused in the handshake, over
// DTLS and TLS, and the refusals are logged once per certificate and
// interval with the number held back; mapped clients are unaffected.
func TestUnmappedCertificateRefused(t *testing.T) {
	var logs logBuffer
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		clk.Install(o)
		o.Logger = logs.logger()
	})
	gamma := e.ClientCert(t, "gamma")
	for _, transport := range []string{"dtls", "tls", "dtls", "tls"} {
		if err := refused(e, gamma, transport); err != nil {
			t.Fatalf("%s: %v", transport, err)
		}
	}
	cuid := e.dev.Clients["gamma"].CUID
	refusal := []string{"level=WARN", "maps to no client domain: handshake refused", cuid}
	if got := logs.lines(refusal...); len(got) != 1 {
		t.Fatalf("%d log lines about the refusals in one interval, want 1: %q", len(got), got)
	}
	clk.Advance(11 * time.Second)
	if err := refused(e, gamma, "tls"); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	got := logs.lines(refusal...)
	if len(got) != 2 || !strings.Contains(got[1], "suppressed=3") {
		t.Fatalf("log lines %q, want a second one with suppressed=3", got)
	}
	if n := len(logs.lines("request refused")); n != 0 {
		t.Fatalf("%d per-request refusals logged: the certificate reached the request path", n)
	}
	for _, transport := range []string{"dtls", "tls"} {
		expect(t, dots.NotFound)(e.client(t, "alpha", transport).Status(ctx(t), nil, ""))
	}
}
