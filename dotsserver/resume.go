package dotsserver

import "github.com/levee-dots/levee/tlsprofile"

// The (D)TLS profile of the signal channel (RFC 9132 §7, which points to
// RFC 7525, now RFC 9325).
//
// Cipher suites: only AEAD suites with ephemeral ECDH are offered or
// accepted (RFC 9325 §4.2, §4.2.1): AES-GCM and ChaCha20-Poly1305, for ECDSA
// and RSA certificates. pion's and crypto/tls's defaults still carry
// AES-CBC with HMAC-SHA1, which a client offering nothing else would get;
// with these lists it gets a handshake_failure alert instead. TLS 1.3
// suites are all AEAD and crypto/tls does not let them be chosen. With
// pre-shared keys configured, DTLS also takes the PSK suites of psk.go.
//
// Session resumption:
//   - TLS: crypto/tls issues session tickets (TLS 1.3 tickets, TLS 1.2
//     RFC 5077 tickets), i.e. resumption without server state, with keys it
//     rotates itself (a new key every 24 h, a ticket accepted for at most
//     7 days). A resumed session carries the client's certificate chain;
//     crypto/tls refuses one whose leaf has expired or whose chain no
//     longer verifies against Options.ClientCAs, and calls
//     VerifyConnection (verifyTLSConn: CRL and client domain) on full and
//     resumed handshakes alike, so a resumed session keeps its identity
//     and loses it with a revocation or a domain change.
//   - DTLS: resumption is refused. pion v3.1.15 does not resume a session
//     whose client sent a certificate (it drops the session id when the
//     client's Certificate arrives, and a server session with client
//     authentication required is never usable, session.go), and it has no
//     session tickets. The server therefore has no session store: with one,
//     its ServerHello would carry a session id that it never keeps, which
//     clients would cache and offer in vain. Every DTLS handshake is a full
//     one, so the gate's rule that a handshake ends with the server's
//     ChangeCipherSpec (after the client's certificate and Finished have
//     been verified) holds for every handshake (README.md).

// dtlsCipherSuites and tlsCipherSuites are the signal channel's AEAD
// suites (tlsprofile), as the client offers them.
var (
	dtlsCipherSuites = tlsprofile.DTLSCipherSuites()
	tlsCipherSuites  = tlsprofile.TLSCipherSuites()
)
