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
	// Bounds on what Set accepts; zero fields take the defaults.
	Bounds Bounds
}

var _ Node = (*NFT)(nil)
