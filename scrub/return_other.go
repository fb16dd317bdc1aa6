//go:build !linux

package scrub

import (
	"context"
	"net/netip"
)

// Return is the return path of cleaned traffic; it exists only on Linux.
type Return struct{}

// NewReturn returns ErrUnsupported outside Linux.
func NewReturn(ReturnOptions) (*Return, error) { return nil, ErrUnsupported }

// Kind returns "".
func (*Return) Kind() string { return "" }

// Unrouted returns nil.
func (*Return) Unrouted() []netip.Prefix { return nil }

// Set returns ErrUnsupported.
func (*Return) Set(context.Context, Desired) error { return ErrUnsupported }

// Close returns ErrUnsupported.
func (*Return) Close() error { return ErrUnsupported }

func (*Return) add(context.Context, Desired) error   { return ErrUnsupported }
func (*Return) prune(context.Context, Desired) error { return ErrUnsupported }
