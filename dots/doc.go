// Package dots holds the wire format of the DOTS signal channel: the Go
// types of RFC 9132 §4.4 (mitigation requests and status), §4.5 (session
// configuration), §4.6 (redirected signaling) and §4.7 (heartbeats), their
// CBOR encoding (§6, Table 5: keys 1–51, plus keys 52–53 of RFC 9133),
// content-format 271 (application/dots+cbor), decimal64 as CBOR tag 4
// (RFC 8949 §3.4.4), the comprehension-required key rules of §6 and
// §10.6.1.1, the cuid derivation of §4.4.1, and an RFC 7951 JSON rendering
// for display.
//
// The package does no I/O, reads no clock and logs nothing. Protocol
// failures are returned as *Error values that carry the CoAP response code
// a server should answer with.
package dots
