package main

import (
	"fmt"

	"github.com/levee-dots/levee/dotsserver"
)

// rateConfig is a request rate limit (limits.requests-per-second and
// limits.request-burst, or a client domain's own under clients[].limits):
// a token bucket per client identity (dotsserver.RateLimit).
type rateConfig struct {
	RequestsPerSecond float64 `yaml:"requests-per-second"`
	RequestBurst      int     `yaml:"request-burst"`
}

func (r rateConfig) server() dotsserver.RateLimit {
	return dotsserver.RateLimit{RequestsPerSecond: r.RequestsPerSecond, Burst: r.RequestBurst}
}

// rate is the server's rate limit of each client identity.
func (l limitsConfig) rate() dotsserver.RateLimit {
	return rateConfig{RequestsPerSecond: l.RequestsPerSecond, RequestBurst: l.RequestBurst}.server()
}

var (
	rateWhy  = fmt.Sprintf("must be more than 0 and at most %g (requests per second); leave the key out for the default", float64(dotsserver.MaxRequestsPerSecond))
	burstWhy = fmt.Sprintf("must be 1 to %d (requests); leave the key out for the default", int(dotsserver.MaxRequestBurst))
)

// validateRate names the key of r (under prefix) that is out of range.
func validateRate(prefix string, r dotsserver.RateLimit, bad func(key, format string, args ...any) error) error {
	if err := r.Validate(); err == nil {
		return nil
	}
	if (dotsserver.RateLimit{RequestsPerSecond: r.RequestsPerSecond}).Validate() != nil {
		return bad(prefix+".requests-per-second", "%g: %s", r.RequestsPerSecond, rateWhy)
	}
	return bad(prefix+".request-burst", "%d: %s", r.Burst, burstWhy)
}

// rateLimit is a client domain's own rate limit, or nil for the server's.
func (c clientConfig) rateLimit() *dotsserver.RateLimit {
	if c.Limits == nil {
		return nil
	}
	r := c.Limits.server()
	return &r
}
