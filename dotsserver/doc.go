// Package dotsserver is the DOTS server's signal channel (RFC 9132): CoAP
// over DTLS 1.2 (UDP) and over TLS 1.2/1.3 (TCP, RFC 8323) on one port
// (§4.1, §7), mutual X.509 authentication mapped to client domains and the
// cuid binding of §4.4.1, the /mitigate resource (§4.4) with Observe
// (RFC 7641, §4.4.2.1), the /config resource (§4.5) with Observe too,
// redirected signaling (§4.6, redirect.go), heartbeats (§4.7),
// and the translation of each request into a call of the mitigation service
// (package service), which checks ownership, stores the change before it
// is acknowledged and diverts: CoAP and CBOR in, a service call, CoAP out.
// A handler that panics answers 5.00 with a short diagnostic; no internal
// error text reaches a client. Notifications over DTLS are NON, one per
// 3 s per observer with the latest state (RFC 7641 §4.5.1), and an RST
// answering one cancels its observation (RFC 7641 §3.6).
//
// Limits bound what a peer can make the server hold: request bodies (4.13
// with Size1, RFC 7959 §2.9.3, also for an oversize CoAP-over-TCP frame),
// Observe registrations per session and sessions per client (5.03 with
// Max-Age), and, before authentication, TLS connections in their handshake
// (a deadline, a bound that closes the oldest, accept backoff on EMFILE)
// and DTLS handshakes (dtlsgate.go: a deadline, a bound per /24 or /56
// source prefix, a total bound that drops the oldest handshake whose peer
// has not answered the HelloVerifyRequest; RFC 6347 §4.2.1). README.md says
// why the HelloVerifyRequest is still pion's and not a stateless cookie.
package dotsserver
