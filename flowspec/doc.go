// Package flowspec translates a DOTS mitigation scope (RFC 9132 §4.4.1:
// target prefixes, port ranges and protocols) into BGP Flow Specification
// rules, and builds the traffic-filtering actions that go with them.
//
// A Match is one rule. Match.NLRI encodes it as the NLRI of RFC 8955 §4
// (IPv4, SAFI 133): the length (one octet below 240, otherwise the two-octet
// form 0xFnnn) followed by the components of types 1–12 in ascending type
// order — destination and source prefix, IP protocol, port, destination
// port, source port, ICMP type and code, TCP flags, packet length, DSCP and
// fragment. For IPv6 the encoding is that of RFC 8956 §3: the prefixes carry
// a prefix offset (always 0 here), type 3 is the upper-layer protocol and
// type 13 is the 20-bit flow label. Numeric components (RFC 8955 §4.2.1.1)
// are written as "eq v" for a single value and "ge lo AND le hi" for a
// range, each value in the smallest of 1, 2 or 4 octets that holds it;
// bitmask components (§4.2.1.2) keep the caller's terms as they are.
//
// An Action is one traffic-filtering action of RFC 8955 §7, carried as an
// 8-octet BGP extended community: traffic-rate-bytes (0x8006, where a rate
// of 0 means discard), rt-redirect (0x8008, 0x8108, 0x8208) and
// traffic-marking (0x8009). Redirect to an IPv4 next hop follows
// draft-ietf-idr-flowspec-redirect-ip: the transitive IPv4-address-specific
// extended community of sub-type 0x0c (0x010c) with local administrator 0.
//
// The package is a pure translation: it does no I/O, keeps no state and
// does not depend on a BGP implementation.
package flowspec
