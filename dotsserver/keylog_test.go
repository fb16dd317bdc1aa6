package dotsserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
)

// keyLines parses NSS key log lines: label, client random, secret.
func keyLines(t *testing.T, text string) [][3]string {
	t.Helper()
	var out [][3]string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || len(f[1]) != 64 {
			t.Fatalf("not a key log line: %q", l)
		}
		out = append(out, [3]string{f[0], f[1], f[2]})
	}
	return out
}

// TestKeyLog: with Options.KeyLogWriter, a DTLS handshake writes its
// CLIENT_RANDOM line and a TLS 1.3 one its traffic secrets, each with the
// client random and the secrets the client derived for that very session
// (the client keeps its own key log to compare).
func TestKeyLog(t *testing.T) {
	for _, tc := range []struct {
		transport string
		labels    []string
	}{
		{"dtls", []string{"CLIENT_RANDOM"}},
		{"tls", []string{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			var server, client logBuffer
			e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.KeyLogWriter = &server })
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := dotsclient.Dial(cctx, dotsclient.Config{Servers: []string{e.addr}, Certificate: e.ClientCert(t, "alpha"),
				RootCAs: e.roots, Transport: tc.transport, KeyLogWriter: &client})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			expect(t, dots.Changed)(c.Heartbeat(cctx, true))
			theirs := keyLines(t, client.text())
			var labels []string
			for _, l := range theirs {
				labels = append(labels, l[0])
			}
			for _, want := range tc.labels {
				if !slices.Contains(labels, want) {
					t.Fatalf("the client's key log has no %s line: %q", want, labels)
				}
			}
			ours := keyLines(t, server.text())
			for _, l := range theirs {
				if !slices.Contains(ours, l) {
					t.Errorf("the server's key log lacks the client's %s line for client random %s:\n%s", l[0], l[1], server.text())
				}
			}
		})
	}
}

func (b *logBuffer) text() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
