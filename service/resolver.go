package service

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// SystemResolver resolves with Go's resolver, which tells no TTL: its
// answers are kept for a minute.
type SystemResolver struct{}

// Resolve implements Resolver.
func (SystemResolver) Resolve(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	return addrs, time.Minute, err
}

// LookupResolver adapts a resolver without TTLs (net.Resolver's
// LookupNetIP) with a fixed TTL.
type LookupResolver struct {
	Lookup interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	TTL time.Duration // default 60 s
}

// Resolve implements Resolver.
func (l LookupResolver) Resolve(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	addrs, err := l.Lookup.LookupNetIP(ctx, "ip", name)
	ttl := l.TTL
	if ttl == 0 {
		ttl = time.Minute
	}
	return addrs, ttl, err
}
