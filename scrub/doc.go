// Package scrub is the data plane of a Levee scrubbing node.
//
// A Node takes the complete desired state (Desired: per mitigation, its
// destination prefixes and ordered filter rules) and converges on exactly that
// state in one transaction; Counters reports what the node measured, per
// mitigation and per rule. The only implementation today is NFT, which
// installs one nftables table of family netdev with an ingress chain on the
// scrubber's outside device (early, stateless drop before routing and
// conntrack). See README.md for the table layout and counter semantics.
package scrub
