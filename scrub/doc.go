// Package scrub is the data plane of a Levee scrubbing node, the
// mitigator of RFC 8811 §2 that drops attack traffic and returns the rest.
//
// A Node takes the complete desired state (Desired: per mitigation, its
// destination prefixes and ordered filter rules) and converges on exactly that
// state in one transaction; Counters reports what the node measured, per
// mitigation and per rule (what becomes bytes-dropped and pkts-dropped of
// RFC 9132 §4.4.2). NFT installs one nftables table of family netdev with an
// ingress chain on the scrubber's outside device (early, stateless drop
// before routing and conntrack). Return is the way back for the cleaned
// traffic: a VXLAN (or GRE) tunnel toward the target's site, one route per
// target in its own table and a policy rule for traffic that arrived on the
// outside device. Routed puts the two behind one Node: routes first, then
// the filter, then the routes of targets that left. See README.md for what
// each installs and the counter semantics.
package scrub
