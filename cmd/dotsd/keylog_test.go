package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// TestKeyLogServe: with tls.key-log, dotsd warns at start that the key log
// is on and writes, owner-only, the CLIENT_RANDOM line of a DTLS
// handshake, the same line the client derived for that session.
func TestKeyLogServe(t *testing.T) {
	bin := buildDotsd(t)
	dir, port := t.TempDir(), freePort(t)
	if _, err := pki.Dev(dir, []string{"alpha"}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "dotsd.yaml")
	text := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem], key-log: keys.log}
store: {path: levee.db}
clients:
  - {name: alpha, prefixes: ["203.0.113.0/24"], match: {common-names: [alpha]}}
`, port)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDotsd(t, bin, "--config", cfg)
	if !strings.Contains(d.stderr.String(), "level=WARN msg=\"tls.key-log is on") {
		t.Errorf("no WARN that the key log is on:\n%s", d.stderr)
	}
	cert, _, err := pki.LoadKeyPair(filepath.Join(dir, "clients", "alpha", "cert.pem"), filepath.Join(dir, "clients", "alpha", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var mine syncWriter
	c, err := dotsclient.Dial(reqCtx(t), dotsclient.Config{Servers: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Certificate: cert,
		RootCAs: roots, Transport: "dtls", KeyLogWriter: &mine})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	theirs := strings.TrimSpace(mine.String())
	if !strings.HasPrefix(theirs, "CLIENT_RANDOM ") || strings.Count(theirs, "\n") != 0 {
		t.Fatalf("client key log %q: want one CLIENT_RANDOM line", theirs)
	}
	path := filepath.Join(dir, "keys.log")
	err = lab.WaitFor(t.Context(), 5*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), theirs+"\n"), string(b)
	})
	if err != nil {
		t.Fatalf("dotsd's key log lacks the client's line %q: %v", theirs, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key log: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
}

// TestKeyLogWarnings: the warning comes at start and at every tick while
// the key log is on, and stops with it; no key log, no warning.
func TestKeyLogWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
		want int
	}{
		{"on", "keys.log", 3},
		{"off", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncWriter
			log := slog.New(slog.NewTextHandler(&out, nil))
			path := tc.path
			if path != "" {
				path = filepath.Join(t.TempDir(), path)
			}
			ticks := make(chan time.Time) // a send returns once the tick is taken
			k, stop, err := openKeyLog(context.Background(), path, log, ticks)
			if err != nil {
				t.Fatal(err)
			}
			if (k == nil) != (tc.path == "") {
				t.Fatalf("key log %v for path %q", k, tc.path)
			}
			if k != nil {
				ticks <- time.Time{}
				ticks <- time.Time{}
			}
			stop() // waits for the warning of the last tick
			if n := strings.Count(out.String(), "tls.key-log is on"); n != tc.want {
				t.Fatalf("%d warnings, want %d:\n%s", n, tc.want, out.String())
			}
		})
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
