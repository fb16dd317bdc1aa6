// Package tlsprofile holds the cipher suites of the DOTS signal channel's
// (D)TLS profile, shared by the client (dotsclient) and the server
// (dotsserver) so that what one offers is what the other accepts: only
// AEAD suites with ephemeral ECDH, for DTLS 1.2 and TLS 1.2 (RFC 9132 §7,
// RFC 9325 §4.2). TLS 1.3 suites are not configurable in crypto/tls and
// are all AEAD.
package tlsprofile

import (
	"crypto/tls"

	piondtls "github.com/pion/dtls/v3"
)

// DTLSCipherSuites returns the DTLS 1.2 certificate suites, in order of
// preference (a new slice each call).
func DTLSCipherSuites() []piondtls.CipherSuiteID {
	return []piondtls.CipherSuiteID{
		piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		piondtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		piondtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		piondtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		piondtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		piondtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// TLSCipherSuites returns the TLS 1.2 suites (crypto/tls orders them
// itself; a new slice each call).
func TLSCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}
