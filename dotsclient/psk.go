package dotsclient

import (
	"errors"
	"fmt"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/dots"
)

// PSK is a pre-shared key with which a client without a certificate
// authenticates (RFC 9132 §7; TLS 1.2 PSK, RFC 4279). The server knows the
// key under its identity.
type PSK struct {
	Identity string
	Key      []byte
}

// minPSKBytes is the shortest key the client uses (128 bits, as the server
// requires).
const minPSKBytes = 16

// pskCipherSuites are the suites a PSK client offers, in order: ECDHE-PSK
// with ChaCha20-Poly1305 (forward secrecy, RFC 9132 §7's PSK with (EC)DHE),
// then plain PSK with AES-128-GCM for a server without it (no forward
// secrecy). Both are AEAD (RFC 9325 §4.2); pion's only other ECDHE-PSK
// suite is CBC. The handshake's Finished covers the offer, so without the
// key no one can make the peers settle on the second.
var pskCipherSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
}

// PSKCUID is the cuid derived from a PSK identity as RFC 9132 §4.4.1
// recommends (the first 16 bytes of its SHA-256, base64url): the one the
// server derives (dotsserver.PSKCUID).
func PSKCUID(identity string) string { return dots.CUIDFromSPKI([]byte(identity)) }

// checkPSK validates cfg.PSK and returns the cuid derived from it. A PSK
// session is DTLS only: Go's crypto/tls has no external PSKs (TLS 1.2 PSK
// suites or TLS 1.3 external PSKs).
func checkPSK(cfg Config) (string, error) {
	p := cfg.PSK
	switch {
	case p.Identity == "":
		return "", errors.New("dotsclient: the PSK identity is empty")
	case len(p.Key) < minPSKBytes:
		return "", fmt.Errorf("dotsclient: the PSK has %d bytes, at least %d are required", len(p.Key), minPSKBytes)
	case len(cfg.Certificate.Certificate) > 0:
		return "", errors.New("dotsclient: configure a client certificate or a PSK, not both")
	case cfg.Transport != "" && cfg.Transport != "auto" && cfg.Transport != "dtls":
		return "", fmt.Errorf("dotsclient: transport %q: a PSK works over DTLS only (Go's TLS has no external PSKs)", cfg.Transport)
	}
	return PSKCUID(p.Identity), nil
}

// pskCredentials are the pion options that authenticate with the PSK:
// the identity, the key, and only the PSK suites.
func (c *Client) pskCredentials() []piondtls.ClientOption {
	key := append([]byte(nil), c.cfg.PSK.Key...)
	return []piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(c.cfg.PSK.Identity)),
		piondtls.WithCipherSuites(pskCipherSuites...),
	}
}
