package dotsserver

import (
	"crypto/x509"

	"github.com/levee-dots/levee/service"
)

// Identity is an authenticated client as another channel (the RFC 8783 data
// channel) sees it: the cuid derived from its certificate (RFC 9132
// §4.4.1), the SPKI hash that cuid bindings are keyed by, and its domain.
type Identity struct {
	CUID    string
	SPKI    string
	Subject string
	Domain  *service.Domain
}

// IdentifyCertificate maps a client certificate, already verified against
// the configured CAs, to its client domain by the signal channel's rules
// (SPKI pins first, then subject CN and DNS SANs). RFC 8783 §4 requires the
// same identity and cuid on both channels.
func IdentifyCertificate(domains []*ClientDomain, c *x509.Certificate) (Identity, error) {
	p, err := identifyCert(domains, c, "tls")
	if err != nil {
		return Identity{}, err
	}
	return Identity{CUID: p.cuid, SPKI: p.spki, Subject: p.subject, Domain: p.domain.serviceDomain()}, nil
}

// IdentifyCertificate is the package function with the client domains and
// certificate revocation lists in force (a SIGHUP reload replaces them): a
// revoked certificate is refused on the data channel as on the signal
// channel.
func (s *Server) IdentifyCertificate(c *x509.Certificate) (Identity, error) {
	set := s.clients()
	if err := set.crl.check(c); err != nil {
		return Identity{}, err
	}
	return IdentifyCertificate(set.domains, c)
}

// ClientCAs returns the client CAs in force, for other channels that verify
// the same clients (RFC 8783 §3).
func (s *Server) ClientCAs() *x509.CertPool { return s.clients().cas }
