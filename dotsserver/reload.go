package dotsserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// clientSet is what Reload replaces while the server runs: who the
// clients are and what bounds their sessions. Readers load it once per
// decision (Server.clients); it is never changed in place.
type clientSet struct {
	domains []*ClientDomain
	psks    pskTable
	cas     *x509.CertPool
	crl     *revocations // nil: no CRL
	// The session limits Reload changes; the other Limits bound the
	// listeners and keep their values.
	maxObservePerSession int
	maxSessionsPerClient int
}

// clients returns the client set in force.
func (s *Server) clients() *clientSet { return s.cur.Load() }

// newClientSet checks and builds a client set; lim has its defaults.
func newClientSet(domains []*ClientDomain, cas *x509.CertPool, crl *revocations, lim Limits) (*clientSet, error) {
	psks, err := newPSKTable(domains)
	if err != nil {
		return nil, err
	}
	return &clientSet{domains: domains, psks: psks, cas: cas, crl: crl,
		maxObservePerSession: lim.MaxObservePerSession, maxSessionsPerClient: lim.MaxSessionsPerClient}, nil
}

// Reloadable is the part of the configuration that Reload replaces while
// the server runs.
type Reloadable struct {
	Domains   []*ClientDomain
	ClientCAs *x509.CertPool
	CRL       CRL
	// RateLimit is the server's rate limit of each client identity (zero
	// fields: defaults), as Options.RateLimit.
	RateLimit RateLimit
	// Limits: only MaxObservePerSession and MaxSessionsPerClient are
	// taken; the other fields bound the listeners, which keep the values
	// of Options.Limits until a restart.
	Limits Limits
}

// ReloadResult tells what a reload did to the running sessions.
type ReloadResult struct {
	// Closed are the sessions whose client no longer maps to the domain
	// it had (removed, or now matched by another), whose certificate no
	// longer chains to a client CA, or which a CRL now revokes.
	Closed int
	// Remapped are the sessions kept and moved to their domain's new
	// definition (other prefixes, rate limit ...).
	Remapped int
}

// Reload replaces the client domains, the client CAs, the CRLs, the rate
// limits and the session limits at once. Handshakes from then on use the
// new set; sessions of domains that did not change are left alone, those
// of changed domains keep running under the new definition, and those
// whose identity no longer maps to the same domain are closed. A
// Reloadable that does not validate changes nothing.
func (s *Server) Reload(r Reloadable) (ReloadResult, error) {
	if err := r.Limits.Validate(); err != nil {
		return ReloadResult{}, fmt.Errorf("dotsserver: limits: %w", err)
	}
	if err := validateRates(Options{RateLimit: r.RateLimit, Domains: r.Domains}); err != nil {
		return ReloadResult{}, fmt.Errorf("dotsserver: %w", err)
	}
	if r.ClientCAs == nil {
		return ReloadResult{}, errors.New("dotsserver: no client CAs")
	}
	if r.CRL.CheckInterval == 0 && s.opts.CRL.CheckInterval != 0 {
		r.CRL.CheckInterval = s.opts.CRL.CheckInterval
	}
	crl, err := newRevocations(r.CRL, s.log, s.now)
	if err != nil {
		return ReloadResult{}, fmt.Errorf("dotsserver: %w", err)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.clients()
	domains := keepUnchanged(old.domains, r.Domains)
	lim := r.Limits.withDefaults()
	next, err := newClientSet(domains, r.ClientCAs, crl, lim)
	if err != nil {
		return ReloadResult{}, fmt.Errorf("dotsserver: %w", err)
	}
	s.cur.Store(next)
	s.rate.setDefault(r.RateLimit)
	res := s.reviewSessions(next)
	s.log.Info("client configuration reloaded", "domains", len(domains), "sessions-closed", res.Closed, "sessions-remapped", res.Remapped)
	return res, nil
}

// keepUnchanged returns next with each domain equal to one of cur
// replaced by that one, so the sessions of unchanged domains keep the
// very domain they were identified with.
func keepUnchanged(cur, next []*ClientDomain) []*ClientDomain {
	byName := map[string]*ClientDomain{}
	for _, d := range cur {
		byName[d.Name] = d
	}
	out := make([]*ClientDomain, len(next))
	for i, d := range next {
		if o := byName[d.Name]; o != nil && sameDomain(o, d) {
			out[i] = o
		} else {
			out[i] = d
		}
	}
	return out
}

func sameDomain(a, b *ClientDomain) bool {
	samePSK := slices.EqualFunc(a.PSKs, b.PSKs, func(x, y PSK) bool { return x.Identity == y.Identity && string(x.Key) == string(y.Key) })
	sameRate := (a.RateLimit == nil) == (b.RateLimit == nil) && (a.RateLimit == nil || *a.RateLimit == *b.RateLimit)
	return a.Name == b.Name && slices.Equal(a.Prefixes, b.Prefixes) && slices.Equal(a.SPKIPins, b.SPKIPins) &&
		slices.Equal(a.CommonNames, b.CommonNames) && slices.Equal(a.DNSNames, b.DNSNames) && samePSK && sameRate
}

// reviewSessions identifies every identified session again under set:
// it closes those that no longer map to the domain they had, and moves
// the others to their domain's current definition.
func (s *Server) reviewSessions(set *clientSet) ReloadResult {
	s.live.mu.Lock()
	conns := maps.Clone(s.live.conns)
	s.live.mu.Unlock()
	var res ReloadResult
	for conn, cs := range conns {
		s.live.mu.Lock()
		p := cs.peer
		s.live.mu.Unlock()
		if p == nil {
			// Not identified yet (no request so far): identified now, so
			// that a client removed does not keep an idle session.
			if why := s.unidentified(conn, set); why != "" {
				s.log.Warn("session closed by the configuration reload", "why", why, "remote", conn.RemoteAddr().String())
				_ = conn.Close()
				res.Closed++
			}
			continue
		}
		if slices.Contains(set.domains, p.domain) && s.stillTrusted(conn, p, set) == nil {
			continue
		}
		np, why := s.reidentify(conn, p, set)
		if why != "" {
			s.log.Warn("session closed by the configuration reload", "cuid", p.cuid, "domain", p.domain.Name,
				"why", why, "remote", conn.RemoteAddr().String())
			_ = conn.Close()
			res.Closed++
			continue
		}
		s.live.mu.Lock()
		if cs.peer == p {
			cs.peer = np
		}
		s.live.mu.Unlock()
		res.Remapped++
	}
	return res
}

// unidentified says why a session not identified yet cannot stay under
// set ("" when it can).
func (s *Server) unidentified(conn mux.Conn, set *clientSet) string {
	p, ok, err := s.pskPeerIn(set, conn.NetConn())
	if !ok {
		var leaf []byte
		var transport string
		if leaf, transport, err = peerLeaf(conn.NetConn()); err == nil {
			p, err = identify(set.domains, leaf, transport)
		}
	}
	if err == nil {
		err = s.stillTrusted(conn, p, set)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// reidentify maps a session's client under set; why says why it cannot
// stay.
func (s *Server) reidentify(conn mux.Conn, p *peer, set *clientSet) (*peer, string) {
	if err := s.stillTrusted(conn, p, set); err != nil {
		return nil, err.Error()
	}
	var np *peer
	var err error
	if p.cert == nil {
		np, _, err = s.pskPeerIn(set, conn.NetConn())
	} else {
		np, err = identifyCert(set.domains, p.cert, p.transport)
	}
	switch {
	case err != nil:
		return nil, err.Error()
	case np == nil:
		return nil, "the session has no certificate and no PSK identity"
	case np.domain.Name != p.domain.Name:
		return nil, fmt.Sprintf("the client now maps to client domain %q: it reconnects as such", np.domain.Name)
	case p.cert == nil && !samePSKKey(p.domain, np.domain, p.subject):
		return nil, "the key of its PSK identity changed: it reconnects with the new one"
	}
	return np, ""
}

// samePSKKey reports whether the PSK identity of a session (its peer
// subject, "PSK identity ID") has the same key in both domains.
func samePSKKey(a, b *ClientDomain, subject string) bool {
	id := strings.TrimPrefix(subject, "PSK identity ")
	key := func(d *ClientDomain) string {
		for _, p := range d.PSKs {
			if p.Identity == id {
				return string(p.Key)
			}
		}
		return ""
	}
	return key(a) == key(b)
}

// stillTrusted checks a certificate session against set's CAs and CRL.
func (s *Server) stillTrusted(conn mux.Conn, p *peer, set *clientSet) error {
	if p.cert == nil {
		return nil
	}
	if err := set.crl.check(p.cert); err != nil {
		return err
	}
	chain := peerChain(conn)
	if len(chain) == 0 {
		chain = []*x509.Certificate{p.cert}
	}
	return verifyChain(chain, set.cas, time.Now())
}

// peerChain returns the certificates a session's client sent, leaf first.
func peerChain(conn mux.Conn) []*x509.Certificate {
	var raw [][]byte
	switch c := conn.NetConn().(type) {
	case *piondtls.Conn:
		if st, ok := c.ConnectionState(); ok {
			raw = st.PeerCertificates
		}
	case interface{ ConnectionState() tls.ConnectionState }:
		return c.ConnectionState().PeerCertificates
	}
	var out []*x509.Certificate
	for _, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil
		}
		out = append(out, c)
	}
	return out
}

// verifyChain checks that chain (leaf first, then intermediates) leads to
// one of roots for client authentication, as the (D)TLS handshake does
// (now is the wall clock: certificates are valid in real time).
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	return nil
}

// verifyDTLSChain is the chain check of DTLS handshakes. pion's own check
// uses a pool fixed when the listener opens; this one uses the client CAs
// in force, so a reload changes them for DTLS as for TLS.
func (s *Server) verifyDTLSChain(raw [][]byte) (*x509.Certificate, error) {
	chain := make([]*x509.Certificate, 0, len(raw))
	for _, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if err := verifyChain(chain, s.clients().cas, time.Now()); err != nil {
		return nil, err
	}
	return chain[0], nil
}

// dtlsCertificateRequest names the client CAs in force in the DTLS
// CertificateRequest, so a client can pick its certificate.
func (s *Server) dtlsCertificateRequest(m handshake.MessageCertificateRequest) handshake.Message {
	m.CertificateAuthoritiesNames = s.clients().cas.Subjects() //nolint:staticcheck // not a system pool
	return &m
}

// tlsConfigForClient gives each TLS handshake the client CAs in force.
func (s *Server) tlsConfigForClient(base *tls.Config) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = s.clients().cas
		return c, nil
	}
}

// setDefault replaces the server's rate limit; buckets take it (or their
// domain's) at their next request.
func (l *rateLimiter) setDefault(def RateLimit) {
	l.mu.Lock()
	l.def = def.or(defaultRateLimit)
	l.mu.Unlock()
}
