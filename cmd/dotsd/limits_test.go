package main

import (
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver"
)

// TestLimitsConfig: the limits section reaches the signal channel as
// written, a missing section means the defaults, and a value out of range
// (or an explicit 0, which would silently mean the default) is refused
// naming its key.
func TestLimitsConfig(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, "dotsd.yaml", goodConfig+`limits:
  max-body-bytes: 32768
  max-observe-per-session: 16
  max-sessions-per-client: 2
  tls-handshake-timeout: 3s
  max-unauthenticated-connections: 1000
`))
	if err != nil {
		t.Fatal(err)
	}
	want := dotsserver.Limits{MaxBodyBytes: 32768, MaxObservePerSession: 16, MaxSessionsPerClient: 2,
		TLSHandshakeTimeout: 3 * time.Second, MaxUnauthenticatedConns: 1000}
	if got := cfg.Limits.server(); got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	cfg, err = loadConfig(writeConfig(t, "dotsd.yaml", goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Limits.server(); got != (dotsserver.Limits{}) {
		t.Fatalf("without a limits section: %+v, want the zero value (defaults)", got)
	}
	refusesLimits(t, []limitRefusal{
		{"max-body-bytes: 100", "limits.max-body-bytes", "1024 to"},
		{"max-body-bytes: 1000000000", "limits.max-body-bytes", "1024 to"},
		{"max-body-bytes: 0", "limits.max-body-bytes", "leave the key out"},
		{"max-observe-per-session: -1", "limits.max-observe-per-session", "at least 1"},
		{"max-observe-per-session: 0", "limits.max-observe-per-session", "leave the key out"},
		{"max-sessions-per-client: -3", "limits.max-sessions-per-client", "at least 1"},
		{"max-sessions-per-client:", "limits.max-sessions-per-client", "no value"},
		{"tls-handshake-timeout: -1s", "limits.tls-handshake-timeout", "positive"},
		{"tls-handshake-timeout: 0s", "limits.tls-handshake-timeout", "leave the key out"},
		{"max-unauthenticated-connections: -1", "limits.max-unauthenticated-connections", "at least 1"},
		{"max-unauthenticated-connections: 0", "limits.max-unauthenticated-connections", "leave the key out"},
		{"max-bodies: 3", "limits.max-bodies", "unknown key"},
	})
}

// limitRefusal is a value under limits: and what its refusal must say.
type limitRefusal struct{ yaml, key, msg string }

// refusesLimits checks that each value is refused with an error that names
// its key and says msg.
func refusesLimits(t *testing.T, cases []limitRefusal) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.yaml, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, "dotsd.yaml", goodConfig+"limits:\n  "+tc.yaml+"\n"))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q: want it to name %s and say %q", err, tc.key, tc.msg)
			}
		})
	}
}
