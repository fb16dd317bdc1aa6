// Package bgp is the diversion backend that embeds one GoBGP v4 speaker in
// dotsd and announces accepted mitigations to the provider's edge routers:
// RTBH routes with the BLACKHOLE community (RFC 7999) toward a discard next
// hop (RFC 5635), FlowSpec rules (RFC 8955 for IPv4, RFC 8956 for IPv6) built
// by package flowspec, and the scrubbing on-ramp (the target announced with
// the scrubbing centre as next hop, or a FlowSpec redirect to it). It checks
// that an established neighbor negotiated each needed family (RFC 4760)
// before it reports a mitigation as active, bounds what it announces
// (shortest prefix, routes per domain, FlowSpec budget per neighbor), and
// re-announces exactly the active set after a restart with graceful restart
// (RFC 4724); a clean stop with graceful restart leaves the routes at the
// routers as stale until then. Addresses that came from names are not
// blackholed unless configured (names-countermeasure). FlowSpec rules are
// grouped so that no UPDATE carries 4,096 octets of FlowSpec NLRI or more,
// which FRR refuses (see maxNLRIBytes). Data-channel ACLs (RFC 8783 §7.3)
// are enforced as FlowSpec rules too, one per drop or rate-limit entry, for
// destinations the diversion carries only; accept entries cannot be
// expressed, as routers order FlowSpec rules by RFC 8955 §5.1 and not by
// the ACL's order (see acl.go).
package bgp
