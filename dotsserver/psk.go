package dotsserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/dots"
)

// Pre-shared keys (RFC 9132 §7: mutual authentication with certificates,
// raw public keys or a PSK; a compliant implementation supports PSK with
// (EC)DHE key exchange).
//
// A client without a certificate authenticates with a TLS 1.2 PSK identity
// and its key (RFC 4279). It is DTLS only: Go's crypto/tls has no external
// PSKs (neither TLS 1.2 PSK suites nor TLS 1.3 external PSKs), so a PSK
// client has no TLS fallback. A client that offers a certificate suite still
// has to present a certificate of a configured CA: a PSK makes no difference
// to it.
//
// Cipher suites (RFC 9325 §4.2: AEAD only, forward secrecy preferred); pion
// takes the first suite of the client's offer that it accepts:
//   - TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 (RFC 7905): ECDHE-PSK,
//     the (EC)DHE PSK handshake RFC 9132 §7 asks for, with an AEAD. It is
//     the only AEAD ECDHE-PSK suite of pion v3.1.15 (its
//     TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256 is CBC, refused here).
//   - TLS_PSK_WITH_AES_128_GCM_SHA256 (RFC 5487) and
//     TLS_PSK_WITH_AES_128_CCM (RFC 6655): plain PSK with an AEAD, for
//     clients without the ECDHE-PSK suite above. They have no forward
//     secrecy: whoever learns the key later can decrypt recorded sessions.
//     Our client (dotsclient) and libcoap's OpenSSL build offer the
//     ECDHE-PSK suite first.
//
// The CCM_8 suites (an 8-byte tag, RFC 9325 §4.2 keeps them for constrained
// devices) and the CBC ones are not accepted.
var pskCipherSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_CCM,
}

// MinPSKBytes is the shortest pre-shared key accepted (128 bits, RFC 9325
// §4.1's floor for symmetric strength).
const MinPSKBytes = 16

// MaxPSKIdentityBytes bounds a PSK identity (RFC 4279 §5.3: up to 2^16-1
// bytes; 128 must be supported, more is rarely useful).
const MaxPSKIdentityBytes = 128

// PSK is a pre-shared key of a client domain: the client names it by its
// identity in the handshake (RFC 4279 §2).
type PSK struct {
	Identity string
	Key      []byte
}

// PSKCUID is the cuid of a client that authenticated with a PSK identity:
// as RFC 9132 §4.4.1 recommends, the first 16 bytes of the SHA-256 of the
// TLS 1.2 PSK identity, in base64url without padding (22 characters), the
// same computation as dots.CUIDFromSPKI over the identity's bytes instead of
// a SubjectPublicKeyInfo. Identities are unique over all client domains of a
// server, so the cuid names one client.
func PSKCUID(identity string) string { return dots.CUIDFromSPKI([]byte(identity)) }

// pskOwner is the identity behind a PSK client's cuid (as peer.spki is for
// a certificate): marked so that it can never equal a certificate's.
func pskOwner(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return "psk:" + hex.EncodeToString(sum[:])
}

type pskEntry struct {
	key    []byte
	domain *ClientDomain
}

// pskTable maps the PSK identities of all client domains to their keys.
type pskTable map[string]pskEntry

// newPSKTable checks the PSKs of the domains: an identity is non-empty, at
// most MaxPSKIdentityBytes long and unique over all domains; a key has at
// least MinPSKBytes.
func newPSKTable(domains []*ClientDomain) (pskTable, error) {
	t := pskTable{}
	for _, d := range domains {
		for _, p := range d.PSKs {
			switch {
			case p.Identity == "":
				return nil, fmt.Errorf("client domain %q: a PSK has an empty identity", d.Name)
			case len(p.Identity) > MaxPSKIdentityBytes:
				return nil, fmt.Errorf("client domain %q: PSK identity %q is longer than %d bytes", d.Name, p.Identity, MaxPSKIdentityBytes)
			case len(p.Key) < MinPSKBytes:
				return nil, fmt.Errorf("client domain %q: the key of PSK identity %q has %d bytes, at least %d are required",
					d.Name, p.Identity, len(p.Key), MinPSKBytes)
			}
			if prev, dup := t[p.Identity]; dup {
				return nil, fmt.Errorf("client domain %q: PSK identity %q is also one of client domain %q", d.Name, p.Identity, prev.domain.Name)
			}
			t[p.Identity] = pskEntry{key: append([]byte(nil), p.Key...), domain: d}
		}
	}
	return t, nil
}

// errUnknownPSKIdentity fails the handshake of an identity not configured.
var errUnknownPSKIdentity = fmt.Errorf("unknown PSK identity")

// key is pion's PSK callback: it gets the client's identity from its
// ClientKeyExchange. An unknown identity fails the handshake; nothing is
// kept of it.
func (s *Server) pskKey(identity []byte) ([]byte, error) {
	e, ok := s.clients().psks[string(identity)]
	if !ok {
		s.rlog.warn("psk-unknown", "unknown PSK identity: handshake refused", "identity", fmt.Sprintf("%.64q", identity), "transport", "dtls")
		return nil, errUnknownPSKIdentity
	}
	return e.key, nil
}

// pskDTLSOptions are the pion options that let clients authenticate with a
// PSK, none when no domain has one when the listener opens.
func (s *Server) pskDTLSOptions() []piondtls.ServerOption {
	if len(s.clients().psks) == 0 {
		return nil
	}
	return []piondtls.ServerOption{piondtls.WithPSK(s.pskKey)}
}

// dtlsSuites are the cipher suites of the DTLS listeners.
func (s *Server) dtlsSuites() []piondtls.CipherSuiteID {
	if len(s.clients().psks) == 0 {
		return dtlsCipherSuites
	}
	return append(append([]piondtls.CipherSuiteID(nil), dtlsCipherSuites...), pskCipherSuites...)
}

// pskPeer is the peer of a DTLS session whose handshake used a PSK, and
// false for any other session.
func (s *Server) pskPeer(nc net.Conn) (*peer, bool, error) {
	return s.pskPeerIn(s.clients(), nc)
}

// pskPeerIn is pskPeer with the PSK identities of set.
func (s *Server) pskPeerIn(set *clientSet, nc net.Conn) (*peer, bool, error) {
	c, ok := nc.(*piondtls.Conn)
	if !ok {
		return nil, false, nil
	}
	st, ok := c.ConnectionState()
	if !ok || len(st.PeerCertificates) > 0 || len(st.IdentityHint) == 0 {
		return nil, false, nil
	}
	id := string(st.IdentityHint)
	p := &peer{cuid: PSKCUID(id), spki: pskOwner(id), subject: "PSK identity " + id, transport: "dtls"}
	e, known := set.psks[id]
	if !known {
		return nil, true, &unmappedError{subject: p.subject, cuid: p.cuid}
	}
	p.domain = e.domain
	s.log.Debug("PSK session", "cuid", p.cuid, "identity", id, "domain", e.domain.Name,
		"suite", st.CipherSuiteID.String(), "remote", nc.RemoteAddr().String())
	return p, true, nil
}
