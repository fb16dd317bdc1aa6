package dotsclient

import (
	"context"
	"fmt"
	"sort"

	"github.com/levee-dots/levee/dots"
)

// MIDRollover is 3/4 of 2^32-1: once a client's mid has reached it, the
// mids restart at 0 as soon as no attack mitigation is active (RFC 9132
// §4.4.1).
const MIDRollover uint32 = 3221225471

// Rollover restarts the client's mids at first (0 in RFC 9132 §4.4.1) if
// no attack mitigation is active: each preconfigured request
// (trigger-mitigation false, not activated) is withdrawn and created again,
// same scope and remaining lifetime, with the mids first, first+1, ... in
// the order of its old mids. It returns the next free mid, or ok false when
// a mitigation is active (status 1 to 5), which leaves everything as it was.
func (c *Client) Rollover(ctx context.Context, first uint32) (next uint32, ok bool, err error) {
	r, err := c.Status(ctx, nil, "")
	if err != nil {
		return 0, false, err
	}
	if r.Code == dots.NotFound {
		return first, true, nil // no request at all
	}
	if r.Code != dots.Content || r.Body == nil || r.Body.MitigationScope == nil {
		return 0, false, fmt.Errorf("dotsclient: mid rollover: reading the mitigations: %w", errOrCode(r))
	}
	var pre []dots.Scope
	for _, sc := range r.Body.MitigationScope.Scope {
		if sc.MID == nil || sc.Status == nil {
			continue
		}
		if *sc.Status >= dots.StatusInProgress && *sc.Status <= dots.StatusClientWithdrawn {
			return 0, false, nil
		}
		if *sc.Status == dots.StatusSignalLoss && sc.TriggerMitigation != nil && !*sc.TriggerMitigation {
			pre = append(pre, sc)
		}
	}
	sort.Slice(pre, func(i, j int) bool { return *pre[i].MID < *pre[j].MID })
	next = first
	for _, sc := range pre {
		old := *sc.MID
		// The old request goes first: a lower mid overlapping a higher one
		// would be refused (4.09 overlapping-targets, §4.4.1).
		if r, err := c.Withdraw(ctx, old); err != nil || r.Code != dots.Deleted {
			return 0, false, fmt.Errorf("dotsclient: mid rollover: withdrawing preconfigured mid %d: %w", old, errOrCode(r, err))
		}
		if r, err := c.Mitigate(ctx, next, preconfigured(sc)); err != nil || r.Code != dots.Created {
			return 0, false, fmt.Errorf("dotsclient: mid rollover: preconfigured mid %d again as mid %d: %w", old, next, errOrCode(r, err))
		}
		c.log.Info("mid rollover: preconfigured mitigation created again", "mid", next, "was", old)
		next++
	}
	return next, true, nil
}

// preconfigured is the request that creates sc again: its configuration
// (RFC 9132 §4.4.1 request attributes) and its remaining lifetime.
func preconfigured(sc dots.Scope) dots.Scope {
	return dots.Scope{TargetPrefix: sc.TargetPrefix, TargetPortRange: sc.TargetPortRange, TargetProtocol: sc.TargetProtocol,
		TargetFQDN: sc.TargetFQDN, TargetURI: sc.TargetURI, AliasName: sc.AliasName, Lifetime: sc.Lifetime,
		TriggerMitigation: dots.Ptr(false), Countermeasure: sc.Countermeasure}
}

// errOrCode is err, or the refusal in r, or r's unexpected code.
func errOrCode(r *Response, errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if r == nil {
		return fmt.Errorf("no answer")
	}
	if err := r.Err(); err != nil {
		return err
	}
	return fmt.Errorf("unexpected %s", r.Code)
}
