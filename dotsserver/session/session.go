// Package session is the protocol core of DOTS session configuration
// (RFC 9132 §4.5: the mitigating-config and idle-config sets, their
// acceptable ranges, sid handling and 4.22) and of heartbeat liveness
// (§4.7: a peer is lost only when nothing at all arrived from it while
// missing-hb-allowed heartbeats went unanswered). It is pure: no I/O, no
// goroutines, times are passed in.
package session

import (
	"fmt"
	"time"

	"github.com/levee-dots/levee/dots"
)

// Values is one configuration set.
type Values struct {
	HeartbeatInterval uint16       `json:"heartbeat_interval"` // seconds, 0 disables heartbeats
	MissingHBAllowed  uint16       `json:"missing_hb_allowed"`
	MaxRetransmit     uint16       `json:"max_retransmit"`
	AckTimeout        dots.Decimal `json:"ack_timeout"` // hundredths of a second
	AckRandomFactor   dots.Decimal `json:"ack_random_factor"`
	ProbingRate       uint16       `json:"probing_rate"` // byte/s
}

// Defaults are the RFC 9132 §4.5 / Appendix C defaults.
var Defaults = Values{HeartbeatInterval: 30, MissingHBAllowed: 15, MaxRetransmit: 3,
	AckTimeout: 200, AckRandomFactor: 150, ProbingRate: 5}

// Ranges are the acceptable values; the defaults follow RFC 9132 Figure 20.
type Ranges struct{ Min, Max Values }

// DefaultRanges are the ranges of RFC 9132 Figure 20 (heartbeat 15–240 s,
// with 0 also accepted in idle-config to disable heartbeats).
var DefaultRanges = Ranges{
	Min: Values{HeartbeatInterval: 15, MissingHBAllowed: 3, MaxRetransmit: 2, AckTimeout: 100, AckRandomFactor: 110, ProbingRate: 5},
	Max: Values{HeartbeatInterval: 240, MissingHBAllowed: 20, MaxRetransmit: 15, AckTimeout: 3000, AckRandomFactor: 400, ProbingRate: 20},
}

// Config is the negotiated configuration of one client.
type Config struct {
	SID        uint32 `json:"sid"`
	Mitigating Values `json:"mitigating"`
	Idle       Values `json:"idle"`
}

// DefaultConfig is the configuration before any PUT /config.
func DefaultConfig() Config { return Config{Mitigating: Defaults, Idle: Defaults} }

// Current returns the set in force: mitigating while a mitigation is active.
func (c Config) Current(mitigating bool) Values {
	if mitigating {
		return c.Mitigating
	}
	return c.Idle
}

// Describe renders GET /config: min, max and current values of both sets.
func (r Ranges) Describe(c Config, withSID bool) *dots.Message {
	sc := &dots.SignalConfig{MitigatingConfig: r.describeSet(c.Mitigating), IdleConfig: r.describeSet(c.Idle)}
	if withSID && c.SID != 0 {
		sc.SID = dots.Ptr(c.SID)
	}
	return &dots.Message{SignalConfig: sc}
}

func (r Ranges) describeSet(v Values) *dots.ConfigSet {
	u := func(min, max, cur uint16) *dots.Uint16Param {
		return &dots.Uint16Param{MinValue: dots.Ptr(min), MaxValue: dots.Ptr(max), CurrentValue: dots.Ptr(cur)}
	}
	d := func(min, max, cur dots.Decimal) *dots.DecimalParam {
		return &dots.DecimalParam{MinValue: dots.Ptr(min), MaxValue: dots.Ptr(max), CurrentValue: dots.Ptr(cur)}
	}
	return &dots.ConfigSet{
		HeartbeatInterval: u(r.Min.HeartbeatInterval, r.Max.HeartbeatInterval, v.HeartbeatInterval),
		MissingHBAllowed:  u(r.Min.MissingHBAllowed, r.Max.MissingHBAllowed, v.MissingHBAllowed),
		MaxRetransmit:     u(r.Min.MaxRetransmit, r.Max.MaxRetransmit, v.MaxRetransmit),
		AckTimeout:        d(r.Min.AckTimeout, r.Max.AckTimeout, v.AckTimeout),
		AckRandomFactor:   d(r.Min.AckRandomFactor, r.Max.AckRandomFactor, v.AckRandomFactor),
		ProbingRate:       u(r.Min.ProbingRate, r.Max.ProbingRate, v.ProbingRate),
	}
}

// Negotiate applies PUT /config/sid=N. It returns the new configuration and
// 2.01 (new sid) or 2.04 (same sid); a value outside the ranges is 4.22, a
// malformed body, a sid in the body or a sid lower than the current one
// 4.00 (RFC 9132 §4.5.2).
func (r Ranges) Negotiate(cur Config, sid uint32, m *dots.Message) (Config, dots.Code, error) {
	if m == nil || m.SignalConfig == nil || m.MitigationScope != nil || m.Heartbeat != nil {
		return cur, 0, dots.Errorf(dots.BadRequest, "body must hold ietf-dots-signal-channel:signal-config")
	}
	sc := m.SignalConfig
	if sc.SID != nil {
		return cur, 0, dots.Errorf(dots.BadRequest, "sid belongs in the Uri-Path, not in the body")
	}
	if sc.MitigatingConfig == nil && sc.IdleConfig == nil {
		return cur, 0, dots.Errorf(dots.BadRequest, "signal-config must hold mitigating-config or idle-config")
	}
	for _, set := range []*dots.ConfigSet{sc.MitigatingConfig, sc.IdleConfig} {
		if set != nil && *set == (dots.ConfigSet{}) {
			return cur, 0, dots.Errorf(dots.BadRequest, "a configuration set must hold at least one parameter")
		}
	}
	if sid < cur.SID {
		// RFC 9132 §4.5.2: sid values increase monotonically, and the
		// configuration of a higher sid replaces (deletes) a lower one. A
		// lower sid is a late or replayed PUT: it must not roll back.
		return cur, 0, dots.Errorf(dots.BadRequest, "sid %d is lower than the current sid %d: sid values increase monotonically, "+
			"so this configuration is stale (GET /config shows the current one; DELETE /config resets it)", sid, cur.SID)
	}
	known := cur.SID == sid && cur != DefaultConfig()
	next := cur
	if !known {
		next = DefaultConfig()
	}
	next.SID = sid
	var err error
	if next.Mitigating, err = r.apply(next.Mitigating, sc.MitigatingConfig, "mitigating-config", false); err != nil {
		return cur, 0, err
	}
	if next.Idle, err = r.apply(next.Idle, sc.IdleConfig, "idle-config", true); err != nil {
		return cur, 0, err
	}
	code := dots.Created
	if known {
		code = dots.Changed
	}
	return next, code, nil
}

func (r Ranges) apply(v Values, s *dots.ConfigSet, set string, idle bool) (Values, error) {
	if s == nil {
		return v, nil
	}
	type u16 struct {
		name       string
		p          *dots.Uint16Param
		dst        *uint16
		min, max   uint16
		zeroIsOkay bool
	}
	for _, f := range []u16{
		{"heartbeat-interval", s.HeartbeatInterval, &v.HeartbeatInterval, r.Min.HeartbeatInterval, r.Max.HeartbeatInterval, idle},
		{"missing-hb-allowed", s.MissingHBAllowed, &v.MissingHBAllowed, r.Min.MissingHBAllowed, r.Max.MissingHBAllowed, false},
		{"max-retransmit", s.MaxRetransmit, &v.MaxRetransmit, r.Min.MaxRetransmit, r.Max.MaxRetransmit, false},
		{"probing-rate", s.ProbingRate, &v.ProbingRate, r.Min.ProbingRate, r.Max.ProbingRate, false},
	} {
		if f.p == nil {
			continue
		}
		if f.p.MinValue != nil || f.p.MaxValue != nil {
			return v, dots.Errorf(dots.BadRequest, "%s/%s: min-value and max-value are server-to-client only", set, f.name)
		}
		if f.p.CurrentValue == nil {
			return v, dots.Errorf(dots.BadRequest, "%s/%s: current-value is missing", set, f.name)
		}
		c := *f.p.CurrentValue
		if (c < f.min || c > f.max) && !(c == 0 && f.zeroIsOkay) {
			return v, dots.Errorf(dots.UnprocessableEntity, "%s/%s: %d is outside %d..%d", set, f.name, c, f.min, f.max)
		}
		*f.dst = c
	}
	type dec struct {
		name     string
		p        *dots.DecimalParam
		dst      *dots.Decimal
		min, max dots.Decimal
	}
	for _, f := range []dec{
		{"ack-timeout", s.AckTimeout, &v.AckTimeout, r.Min.AckTimeout, r.Max.AckTimeout},
		{"ack-random-factor", s.AckRandomFactor, &v.AckRandomFactor, r.Min.AckRandomFactor, r.Max.AckRandomFactor},
	} {
		if f.p == nil {
			continue
		}
		if f.p.MinValue != nil || f.p.MaxValue != nil || f.p.CurrentValue == nil {
			return v, dots.Errorf(dots.BadRequest, "%s/%s: send current-value-decimal only", set, f.name)
		}
		c := *f.p.CurrentValue
		if c < f.min || c > f.max {
			return v, dots.Errorf(dots.UnprocessableEntity, "%s/%s: %s is outside %s..%s", set, f.name, c, f.min, f.max)
		}
		*f.dst = c
	}
	return v, nil
}

// Validate checks that the ranges are usable, naming the field at fault.
func (r Ranges) Validate() error {
	check := func(name string, min, max, def uint16) error {
		if min > max || def < min || def > max {
			return fmt.Errorf("%s: need min <= default <= max, have %d <= %d <= %d", name, min, def, max)
		}
		return nil
	}
	for _, e := range []error{
		check("heartbeat-interval", r.Min.HeartbeatInterval, r.Max.HeartbeatInterval, Defaults.HeartbeatInterval),
		check("missing-hb-allowed", r.Min.MissingHBAllowed, r.Max.MissingHBAllowed, Defaults.MissingHBAllowed),
		check("max-retransmit", r.Min.MaxRetransmit, r.Max.MaxRetransmit, Defaults.MaxRetransmit),
		check("probing-rate", r.Min.ProbingRate, r.Max.ProbingRate, Defaults.ProbingRate),
	} {
		if e != nil {
			return e
		}
	}
	return nil
}

// Lost reports whether a peer is lost (RFC 9132 §4.7): heartbeats are on
// and nothing at all arrived from it since lastRx for missing-hb-allowed
// heartbeat intervals. Any traffic, not only heartbeats, keeps it alive.
func Lost(lastRx, now time.Time, v Values) bool {
	if v.HeartbeatInterval == 0 {
		return false
	}
	window := time.Duration(v.HeartbeatInterval) * time.Duration(max(v.MissingHBAllowed, 1)) * time.Second
	return now.Sub(lastRx) > window
}

// HeartbeatDue reports whether the next heartbeat to the peer is due.
func HeartbeatDue(lastSent, now time.Time, v Values) bool {
	return v.HeartbeatInterval > 0 && now.Sub(lastSent) >= time.Duration(v.HeartbeatInterval)*time.Second
}

// PeerHBStatus is the peer-hb-status to send: a heartbeat arrived from the
// peer in the last two heartbeat intervals.
func PeerHBStatus(lastHBRx, now time.Time, v Values) bool {
	return !lastHBRx.IsZero() && now.Sub(lastHBRx) <= 2*time.Duration(v.HeartbeatInterval)*time.Second
}
