// Package data holds the wire format of the DOTS data channel: the Go types
// of the RFC 8783 YANG module ietf-dots-data-channel (§4: dots-client with
// cuid and cdid, §6 aliases, §7 filtering rules as RFC 8519 ACLs with the
// DOTS additions of §4.3 — fragment, TCP flags-bitmask, rate-limit,
// activation-type, pending-lifetime — and §7.1 capabilities), their JSON
// encoding per RFC 7951 (module-qualified top-level member names, 64-bit
// integers and decimal64 as strings, identities and bits as strings), and
// the RFC 8040 §7.1 error body (ietf-restconf:errors).
//
// The decoders are strict: an unknown member is an error that names it, every
// string and list is bounded (the Max constants), and the rules of RFC 8519
// and RFC 8783 are checked (names 1..64 characters, fragment not with IPv4
// flags, flags-bitmask not with TCP flags, rate-limit only with accept,
// reject refused, an ipv4 match only in an ipv4-acl-type ACL, port ranges
// with lower <= upper, ...). A failure is an *Error that carries the RFC 8040
// error fields (HTTP status, error-type, error-tag, error-app-tag,
// error-path, error-message) a server answers with.
//
// The package does no I/O, reads no clock and logs nothing.
package data
