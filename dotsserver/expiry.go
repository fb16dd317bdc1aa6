package dotsserver

import (
	"crypto/x509"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/pki"
)

// clientExpiryEvery is how often the end of one client certificate is
// logged at most.
const clientExpiryEvery = 24 * time.Hour

// clientExpiry follows the client certificates seen in handshakes: one
// that ends within pki.ExpiryWarning is logged, once a day at most, and
// the earliest end of those seen in the last day is kept for export.
type clientExpiry struct {
	mu    sync.Mutex
	seen  map[string]seenCert // by issuer and serial
	swept time.Time
}

type seenCert struct {
	notAfter     time.Time
	seen, warned time.Time
}

// clientCertSeen notes a client certificate of a handshake and warns when
// it ends soon (rate-limited per certificate).
func (s *Server) clientCertSeen(c *x509.Certificate, transport string) {
	now := s.now()
	e := &s.expiry
	key := string(c.RawIssuer) + "\x00" + string(c.SerialNumber.Bytes())
	e.mu.Lock()
	if e.seen == nil {
		e.seen = map[string]seenCert{}
	}
	if now.Sub(e.swept) >= clientExpiryEvery {
		e.swept = now
		for k, sc := range e.seen {
			if now.Sub(sc.seen) >= clientExpiryEvery {
				delete(e.seen, k)
			}
		}
	}
	sc := e.seen[key]
	sc.notAfter, sc.seen = c.NotAfter, now
	msg := pki.Expiry("client certificate", c, now)
	warn := msg != "" && (sc.warned.IsZero() || now.Sub(sc.warned) >= clientExpiryEvery)
	if warn {
		sc.warned = now
	}
	e.seen[key] = sc
	e.mu.Unlock()
	if warn {
		s.log.Warn("client certificate ends soon: issue a new one", "detail", msg, "cuid", dots.CUIDFromSPKI(c.RawSubjectPublicKeyInfo),
			"serial", serialHex(c), "not-after", c.NotAfter.UTC(), "transport", transport)
	}
}

// ClientCertNotAfter returns the earliest end of the client certificates
// seen in handshakes during the last day, and false when none was seen
// (for a metric: seconds until a client certificate expires).
func (s *Server) ClientCertNotAfter() (time.Time, bool) {
	now := s.now()
	e := &s.expiry
	e.mu.Lock()
	defer e.mu.Unlock()
	var first time.Time
	for _, sc := range e.seen {
		if now.Sub(sc.seen) < clientExpiryEvery && (first.IsZero() || sc.notAfter.Before(first)) {
			first = sc.notAfter
		}
	}
	return first, !first.IsZero()
}
