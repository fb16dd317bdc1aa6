package scrub

import "log/slog"

// DefaultTableName is the nftables table NFT installs.
const DefaultTableName = "levee"

// NFTOptions configure an NFT node.
type NFTOptions struct {
	// Interface is the ingress device (the scrubber's outside link). Required.
	Interface string
	// NetNS is a network namespace fd to work in; 0: the current one.
	NetNS int
	// TableName of the netdev table; "" means DefaultTableName.
	TableName string
	// Logger; nil discards.
	Logger *slog.Logger
	// NoTrack also installs an inet table of the same name whose
	// raw-priority prerouting chain exempts packets from Interface to any
	// target from conntrack: a scrubber sees one direction of each flow, and
	// tracking it only fills the conntrack table.
	NoTrack bool
	// Bounds on what Set accepts; zero fields take the defaults.
	Bounds Bounds
}

var _ Node = (*NFT)(nil)
