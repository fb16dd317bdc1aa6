package main

import (
	"fmt"
	"time"

	"github.com/levee-dots/levee/dotsserver"
)

// limitsConfig is the limits section: what one peer can make dotsd hold
// (dotsserver.Limits). A key left out takes its default.
type limitsConfig struct {
	MaxBodyBytes                  int64         `yaml:"max-body-bytes"`
	MaxObservePerSession          int           `yaml:"max-observe-per-session"`
	MaxSessionsPerClient          int           `yaml:"max-sessions-per-client"`
	TLSHandshakeTimeout           time.Duration `yaml:"tls-handshake-timeout"`
	MaxUnauthenticatedConnections int           `yaml:"max-unauthenticated-connections"`
	// The DTLS handshakes in progress (dotsserver.DTLSLimits).
	DTLSHandshakeTimeout       time.Duration `yaml:"dtls-handshake-timeout"`
	MaxDTLSHandshakes          int           `yaml:"max-dtls-handshakes"`
	MaxDTLSHandshakesPerPrefix int           `yaml:"max-dtls-handshakes-per-prefix"`
	// The request rate limit of each client identity (limits_rate.go).
	RequestsPerSecond float64 `yaml:"requests-per-second"`
	RequestBurst      int     `yaml:"request-burst"`
}

// server is the section as the signal channel takes it.
func (l limitsConfig) server() dotsserver.Limits {
	return dotsserver.Limits{
		MaxBodyBytes:            l.MaxBodyBytes,
		MaxObservePerSession:    l.MaxObservePerSession,
		MaxSessionsPerClient:    l.MaxSessionsPerClient,
		TLSHandshakeTimeout:     l.TLSHandshakeTimeout,
		MaxUnauthenticatedConns: l.MaxUnauthenticatedConnections,
		DTLS: dotsserver.DTLSLimits{HandshakeTimeout: l.DTLSHandshakeTimeout,
			MaxHandshakes: l.MaxDTLSHandshakes, MaxHandshakesPerPrefix: l.MaxDTLSHandshakesPerPrefix},
	}
}

// limitsExplicitKeys join explicitKeys: written as 0 they would silently
// mean the default.
var limitsExplicitKeys = map[string]string{
	"limits.max-body-bytes":                  fmt.Sprintf("must be %d to %d (bytes); leave the key out for the default %d", dotsserver.MinBodyBytes, 16<<20, dotsserver.DefaultMaxBodyBytes),
	"limits.max-observe-per-session":         fmt.Sprintf("must be at least 1; leave the key out for the default %d", dotsserver.DefaultMaxObservePerSession),
	"limits.max-sessions-per-client":         fmt.Sprintf("must be at least 1; leave the key out for the default %d", dotsserver.DefaultMaxSessionsPerClient),
	"limits.tls-handshake-timeout":           fmt.Sprintf("must be positive; leave the key out for the default %v", dotsserver.DefaultTLSHandshakeTimeout),
	"limits.max-unauthenticated-connections": fmt.Sprintf("must be at least 1; leave the key out for the default %d", dotsserver.DefaultMaxUnauthenticatedConns),
	"limits.dtls-handshake-timeout":          fmt.Sprintf("must be positive; leave the key out for the default %v", dotsserver.DefaultDTLSHandshakeTimeout),
	"limits.max-dtls-handshakes":             fmt.Sprintf("must be at least 1; leave the key out for the default %d", dotsserver.DefaultMaxDTLSHandshakes),
	"limits.max-dtls-handshakes-per-prefix":  fmt.Sprintf("must be at least 1; leave the key out for the default %d", dotsserver.DefaultMaxDTLSHandshakesPerPrefix),

	"limits.requests-per-second":           fmt.Sprintf("must be more than 0; leave the key out for the default %d", dotsserver.DefaultRequestsPerSecond),
	"limits.request-burst":                 fmt.Sprintf("must be at least 1; leave the key out for the default %d", dotsserver.DefaultRequestBurst),
	"clients[].limits.requests-per-second": "must be more than 0; leave the key out for the server's limits.requests-per-second",
	"clients[].limits.request-burst":       "must be at least 1; leave the key out for the server's limits.request-burst",
}

// validate names the first key out of range.
func (l limitsConfig) validate(bad func(key, format string, args ...any) error) error {
	switch {
	case l.MaxBodyBytes != 0 && (l.MaxBodyBytes < dotsserver.MinBodyBytes || l.MaxBodyBytes > 16<<20):
		return bad("limits.max-body-bytes", "%d: %s", l.MaxBodyBytes, limitsExplicitKeys["limits.max-body-bytes"])
	case l.MaxObservePerSession < 0:
		return bad("limits.max-observe-per-session", "%d: %s", l.MaxObservePerSession, limitsExplicitKeys["limits.max-observe-per-session"])
	case l.MaxSessionsPerClient < 0:
		return bad("limits.max-sessions-per-client", "%d: %s", l.MaxSessionsPerClient, limitsExplicitKeys["limits.max-sessions-per-client"])
	case l.TLSHandshakeTimeout < 0:
		return bad("limits.tls-handshake-timeout", "%v: %s", l.TLSHandshakeTimeout, limitsExplicitKeys["limits.tls-handshake-timeout"])
	case l.MaxUnauthenticatedConnections < 0:
		return bad("limits.max-unauthenticated-connections", "%d: %s", l.MaxUnauthenticatedConnections, limitsExplicitKeys["limits.max-unauthenticated-connections"])
	case l.DTLSHandshakeTimeout < 0:
		return bad("limits.dtls-handshake-timeout", "%v: %s", l.DTLSHandshakeTimeout, limitsExplicitKeys["limits.dtls-handshake-timeout"])
	case l.MaxDTLSHandshakes < 0:
		return bad("limits.max-dtls-handshakes", "%d: %s", l.MaxDTLSHandshakes, limitsExplicitKeys["limits.max-dtls-handshakes"])
	case l.MaxDTLSHandshakesPerPrefix < 0:
		return bad("limits.max-dtls-handshakes-per-prefix", "%d: %s", l.MaxDTLSHandshakesPerPrefix, limitsExplicitKeys["limits.max-dtls-handshakes-per-prefix"])
	}
	return validateRate("limits", l.rate(), bad)
}
