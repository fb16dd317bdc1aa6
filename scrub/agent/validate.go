package agent

import (
	"math"

	"github.com/levee-dots/levee/scrub"
)

// Bounds limit what one PUT /v1/state may ask of the node. Zero fields take
// the defaults below.
type Bounds struct {
	MaxMitigations int   // default 10000
	MaxTargets     int   // per mitigation, default 1024
	MaxRules       int   // per mitigation, default 64
	MaxBodyBytes   int64 // size of a request body, default 8 MiB
}

// Defaults of Bounds.
const (
	DefaultMaxMitigations       = 10000
	DefaultMaxTargets           = 1024
	DefaultMaxRules             = 64
	DefaultMaxBodyBytes   int64 = 8 << 20
)

func (b Bounds) normalized() Bounds {
	if b.MaxMitigations <= 0 {
		b.MaxMitigations = DefaultMaxMitigations
	}
	if b.MaxTargets <= 0 {
		b.MaxTargets = DefaultMaxTargets
	}
	if b.MaxRules <= 0 {
		b.MaxRules = DefaultMaxRules
	}
	if b.MaxBodyBytes <= 0 {
		b.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return b
}

// scrub returns the bounds for scrub.Validate: the agent bounds the
// targets per mitigation and leaves the node's own limits (targets over
// all mitigations, sources per rule) to the node.
func (b Bounds) scrub() scrub.Bounds {
	b = b.normalized()
	return scrub.Bounds{MaxMitigations: b.MaxMitigations, MaxRules: b.MaxRules, MaxMitigationTargets: b.MaxTargets,
		MaxTargets: math.MaxInt, MaxSources: math.MaxInt}
}

// Validate checks a desired state against the bounds and the contract of
// scrub.Desired (scrub.Validate); a refusal is a *scrub.FieldError that
// names the field at fault ("mitigations[2].rules[0].action: ...").
func (b Bounds) Validate(d scrub.Desired) error {
	return scrub.Validate(d, b.scrub())
}
