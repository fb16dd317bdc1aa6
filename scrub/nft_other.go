//go:build !linux

package scrub

import (
	"context"
	"errors"
)

// ErrUnsupported is returned by NewNFT and NewReturn outside Linux.
var ErrUnsupported = errors.New("scrub: the data plane (nftables, netlink) needs Linux")

// NFT is the nftables data plane; it exists only on Linux.
type NFT struct{}

// NewNFT returns ErrUnsupported outside Linux.
func NewNFT(NFTOptions) (*NFT, error) { return nil, ErrUnsupported }

// Set returns ErrUnsupported.
func (*NFT) Set(context.Context, Desired) error { return ErrUnsupported }

// Counters returns ErrUnsupported.
func (*NFT) Counters(context.Context) (Counters, error) { return Counters{}, ErrUnsupported }

// Close returns ErrUnsupported.
func (*NFT) Close() error { return ErrUnsupported }

func (*NFT) check(Desired) error { return ErrUnsupported }
