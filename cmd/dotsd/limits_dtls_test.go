package main

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver"
)

// TestLimitsDTLSConfig: the DTLS handshake keys reach the signal channel
// as written; a value out of range or an explicit 0 is refused naming its
// key.
func TestLimitsDTLSConfig(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, "dotsd.yaml", goodConfig+`limits:
  dtls-handshake-timeout: 4s
  max-dtls-handshakes: 2000
  max-dtls-handshakes-per-prefix: 32
`))
	if err != nil {
		t.Fatal(err)
	}
	want := dotsserver.DTLSLimits{HandshakeTimeout: 4 * time.Second, MaxHandshakes: 2000, MaxHandshakesPerPrefix: 32}
	if got := cfg.Limits.server().DTLS; got != want {
		t.Fatalf("DTLS limits %+v, want %+v", got, want)
	}
	refusesLimits(t, []limitRefusal{
		{"dtls-handshake-timeout: -1s", "limits.dtls-handshake-timeout", "positive"},
		{"dtls-handshake-timeout: 0s", "limits.dtls-handshake-timeout", "leave the key out"},
		{"max-dtls-handshakes: -1", "limits.max-dtls-handshakes", "at least 1"},
		{"max-dtls-handshakes: 0", "limits.max-dtls-handshakes", "leave the key out"},
		{"max-dtls-handshakes-per-prefix: -2", "limits.max-dtls-handshakes-per-prefix", "at least 1"},
		{"max-dtls-handshakes-per-prefix: 0", "limits.max-dtls-handshakes-per-prefix", "leave the key out"},
	})
}
