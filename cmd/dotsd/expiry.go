package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"sync"
	"time"

	"github.com/levee-dots/levee/pki"
)

// expiryCheckEvery is how often the server certificate and the client CAs
// are checked for their end.
const expiryCheckEvery = 24 * time.Hour

// Kinds of certificates whose earliest end certExpiry tells.
const (
	expiryServer = "server-certificate" // tls.certificate
	expiryCA     = "client-ca"          // tls.client-cas
	expiryClient = "client-certificate" // seen in handshakes during the last day
)

// certExpiry warns, at start and daily, about the server certificate and
// the client CAs that end within pki.ExpiryWarning (or have ended), and
// tells the earliest end of each kind (NotAfter), for a metric.
type certExpiry struct {
	log    *slog.Logger
	now    func() time.Time
	config func() *fileConfig // the configuration in force
	// clients is the earliest end of the client certificates seen
	// (dotsserver.Server.ClientCertNotAfter).
	clients func() (time.Time, bool)

	mu       sync.Mutex
	notAfter map[string]time.Time
}

// check reads the certificate files in force, logs those that end soon
// and keeps the earliest end of each kind.
func (e *certExpiry) check() {
	cfg, now := e.config(), e.now()
	found := map[string]time.Time{}
	note := func(kind, what string, certs []*x509.Certificate) {
		for _, c := range certs {
			if msg := pki.Expiry(what, c, now); msg != "" {
				e.log.Warn("certificate ends soon: renew it", "detail", msg, "kind", kind, "not-after", c.NotAfter.UTC())
			}
			if t, ok := found[kind]; !ok || c.NotAfter.Before(t) {
				found[kind] = c.NotAfter
			}
		}
	}
	if certs, err := pki.LoadCerts("server certificate", cfg.TLS.Certificate); err != nil {
		e.log.Warn("certificate expiry not checked", "key", "tls.certificate", "err", err)
	} else {
		note(expiryServer, "tls.certificate "+cfg.TLS.Certificate, certs[:1])
	}
	for _, p := range cfg.TLS.ClientCAs {
		certs, err := pki.LoadCerts("CA certificate", p)
		if err != nil {
			e.log.Warn("certificate expiry not checked", "key", "tls.client-cas", "err", err)
			continue
		}
		note(expiryCA, "tls.client-cas "+p, certs)
	}
	e.mu.Lock()
	e.notAfter = found
	e.mu.Unlock()
}

// NotAfter returns the earliest end of each kind of certificate (keys
// expiryServer, expiryCA, expiryClient), as last checked; a kind with no
// certificate is absent.
func (e *certExpiry) NotAfter() map[string]time.Time {
	e.mu.Lock()
	out := make(map[string]time.Time, len(e.notAfter)+1)
	for k, v := range e.notAfter {
		out[k] = v
	}
	e.mu.Unlock()
	if t, ok := e.clients(); ok {
		out[expiryClient] = t
	}
	return out
}

// watchExpiry checks at once and at every tick (nil: daily) until ctx
// ends; stop waits for a check in progress.
func watchExpiry(ctx context.Context, e *certExpiry, ticks <-chan time.Time) (stop func()) {
	e.check()
	return everyTick(ctx, ticks, expiryCheckEvery, e.check)
}

// everyTick runs f at every tick (nil ticks: every d) until ctx ends or
// stop is called; stop waits for a run in progress.
func everyTick(ctx context.Context, ticks <-chan time.Time, d time.Duration, f func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if ticks == nil {
			t := time.NewTicker(d)
			defer t.Stop()
			ticks = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticks:
				f()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
