// Package dotsserver is the DOTS server's signal channel (RFC 9132): CoAP
// over DTLS 1.2 (UDP) and over TLS 1.2/1.3 (TCP, RFC 8323) on one port
// (§4.1, §7), mutual X.509 authentication mapped to client domains and the
// cuid binding of §4.4.1, the /mitigate resource (§4.4) with Observe
// (RFC 7641, §4.4.2.1), the /config resource (§4.5), heartbeats (§4.7),
// scope ownership checks (RFC 8811 §2.2.1: a server MUST reject targets its
// client's domain does not own), and the hand-off of accepted mitigations to
// the divert orchestrator. Every accepted change is written to the store
// before the client is answered.
package dotsserver
