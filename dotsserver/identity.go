package dotsserver

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/service"
)

// ClientDomain is one DOTS client domain: the certificates that belong to
// it and the address space it owns.
type ClientDomain struct {
	Name string
	// Prefixes the domain owns; every target must lie inside one of them.
	Prefixes []netip.Prefix
	// A certificate belongs to the domain when its SubjectPublicKeyInfo
	// matches a pin (the 22-character cuid form, or the full SHA-256 in hex
	// or base64), or else when its subject CN or a DNS SAN is listed.
	SPKIPins    []string
	CommonNames []string
	DNSNames    []string
	// PSKs authenticate clients without a certificate (DTLS only, psk.go).
	PSKs []PSK
	// RateLimit, when set, is the rate limit of each client identity of the
	// domain; its zero fields are the server's (Options.RateLimit).
	RateLimit *RateLimit

	once sync.Once
	sd   *service.Domain
}

// serviceDomain is the domain as the mitigation service sees it.
func (d *ClientDomain) serviceDomain() *service.Domain {
	d.once.Do(func() { d.sd = &service.Domain{Name: d.Name, Prefixes: d.Prefixes} })
	return d.sd
}

// Owns reports whether p lies inside the domain's prefixes.
func (d *ClientDomain) Owns(p netip.Prefix) bool { return d.serviceDomain().Owns(p) }

func (d *ClientDomain) matchesPin(spki []byte) bool {
	sum := sha256.Sum256(spki)
	forms := []string{dots.CUIDFromSPKI(spki), hex.EncodeToString(sum[:]),
		base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:])}
	for _, pin := range d.SPKIPins {
		if slices.Contains(forms, strings.TrimSpace(pin)) {
			return true
		}
	}
	return false
}

func (d *ClientDomain) matchesName(c *x509.Certificate) bool {
	if slices.Contains(d.CommonNames, c.Subject.CommonName) {
		return true
	}
	for _, n := range c.DNSNames {
		if slices.Contains(d.DNSNames, n) {
			return true
		}
	}
	return false
}

// peer is an authenticated client on one connection.
type peer struct {
	cuid      string // derived from the certificate's SPKI (RFC 9132 §4.4.1)
	spki      string // hex SHA-256 of the SPKI: the identity behind the cuid
	domain    *ClientDomain
	subject   string
	transport string // "dtls" or "tls"
	cert      *x509.Certificate
}

// identify finds the client domain of a peer certificate chain (already
// verified against the configured CAs by the (D)TLS layer).
func identify(domains []*ClientDomain, leafDER []byte, transport string) (*peer, error) {
	c, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return identifyCert(domains, c, transport)
}

// unmappedError is a certificate of a configured CA that maps to no client
// domain.
type unmappedError struct {
	subject, cuid string
}

func (e *unmappedError) Error() string {
	return fmt.Sprintf("certificate %q (cuid %s) is not mapped to any client domain", e.subject, e.cuid)
}

func identifyCert(domains []*ClientDomain, c *x509.Certificate, transport string) (*peer, error) {
	p := &peer{cuid: dots.CUIDFromSPKI(c.RawSubjectPublicKeyInfo), subject: c.Subject.String(), transport: transport, cert: c}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	p.spki = hex.EncodeToString(sum[:])
	for _, d := range domains {
		if d.matchesPin(c.RawSubjectPublicKeyInfo) {
			p.domain = d
			return p, nil
		}
	}
	for _, d := range domains {
		if d.matchesName(c) {
			p.domain = d
			return p, nil
		}
	}
	return nil, &unmappedError{subject: p.subject, cuid: p.cuid}
}

// peerLeaf extracts the client's leaf certificate from a DTLS or TLS connection.
func peerLeaf(nc net.Conn) ([]byte, string, error) {
	switch c := nc.(type) {
	case *piondtls.Conn:
		st, ok := c.ConnectionState()
		if !ok || len(st.PeerCertificates) == 0 {
			return nil, "", fmt.Errorf("DTLS peer sent no certificate")
		}
		return st.PeerCertificates[0], "dtls", nil
	case interface{ ConnectionState() tls.ConnectionState }: // *tls.Conn, frameGuard
		st := c.ConnectionState()
		if len(st.PeerCertificates) == 0 {
			return nil, "", fmt.Errorf("TLS peer sent no certificate")
		}
		return st.PeerCertificates[0].Raw, "tls", nil
	}
	return nil, "", fmt.Errorf("unsupported connection type %T", nc)
}
