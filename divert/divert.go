// Package divert hands accepted DOTS mitigations to the backends that divert
// attack traffic (RFC 8811 §2: the DOTS server passes the request to a
// mitigator and MUST report the scope actually applied). It holds the
// Diversion type every backend shares, the small Diverter interface a
// backend implements, and the Orchestrator that fans a diversion out to the
// configured backends and reports each backend's outcome.
package divert

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/flowspec"
)

// Key identifies a diversion: the client's cuid and the request's mid for
// a signal-channel mitigation, or the client's cuid and an ACL's name (MID
// 0) for a data-channel filter (RFC 8783 §7.3).
type Key struct {
	CUID string
	MID  uint32
	ACL  string // set for a filter; then MID is 0
}

func (k Key) String() string {
	if k.ACL != "" {
		return fmt.Sprintf("%s/acl/%s", k.CUID, k.ACL)
	}
	return fmt.Sprintf("%s/%d", k.CUID, k.MID)
}

// Filter is one traffic filter of a data-channel ACL entry (RFC 8783 §7.3,
// RFC 8519 matches): a Flow Specification match and what to do with the
// packets it matches. A backend that enforces filters turns it into a
// FlowSpec rule (RFC 8955/8956) or a scrubber rule.
type Filter struct {
	Match flowspec.Match
	// Action is Discard or RateLimit (RFC 8783 rate-limit); Accept marks
	// an accept-list entry, which diverts nothing by itself.
	Action flowspec.Action
	Accept bool
}

// Diversion is what a backend is asked to apply for one mitigation.
type Diversion struct {
	Key       Key
	Domain    string           // the client domain (for per-domain policy)
	Prefixes  []netip.Prefix   // owned, validated target addresses
	Ports     []dots.PortRange // empty: any port
	Protocols []uint8          // empty: any protocol
	FQDNs     []string
	// FromNames are the addresses of Prefixes that came from resolving
	// target-fqdn or target-uri names (not named by the client as
	// prefixes). A name's addresses usually host the origin that must
	// receive the cleaned traffic, so backends do not blackhole them by
	// default (divert/bgp: names-countermeasure).
	FromNames []netip.Prefix
	Expires   time.Time // zero: indefinite
	// Countermeasure the client asked for ("" = its domain's policy), e.g. "rtbh".
	Countermeasure string
	// Filters are set for a data-channel ACL (Key.ACL set): the rules to
	// enforce, in the ACL's order. Prefixes then holds their destinations.
	// A backend that does not enforce filters reports Status 0 for it.
	Filters []Filter
}

// Checker is implemented by backends that refuse some diversions up front
// (policy, safety rails). The server checks before it accepts a request and
// answers 4.03 with the error's text.
type Checker interface {
	Check(d Diversion) error
}

// Applied is what a backend did with a diversion.
type Applied struct {
	// Status is dots.StatusMitigated once traffic is diverted (e.g. a BGP
	// peer has the route), dots.StatusInProgress while pending or failed,
	// dots.StatusExceededCapability when a budget or capability refuses it.
	// Zero means the backend does not handle this kind of scope.
	Status dots.Status
	// Detail says what was actually applied, for the log and the client's
	// status (RFC 8811: the server MUST report the scope it applied).
	Detail string
	// Seq orders a backend's outcomes: a backend that reports outcomes
	// from more than one goroutine (an Apply and a neighbor event) stamps
	// each with a number that grows in the order it decided them, and an
	// outcome with a lower Seq than one already taken is dropped. Zero:
	// arrival order.
	Seq uint64
}

// Diverter is one diversion backend. Apply is an idempotent upsert by Key;
// Withdraw of an unknown key returns nil. A backend whose outcome changes
// later (a peer comes up, a route is lost) reports it through the Updates
// function it was built with.
type Diverter interface {
	Name() string
	Apply(ctx context.Context, d Diversion) (Applied, error)
	Withdraw(ctx context.Context, k Key) error
}

// Updates receives a backend's later changes of outcome for a key.
type Updates func(backend string, k Key, a Applied)

// Counters are what a backend measured of the traffic it dropped for one
// mitigation. BytesDropped and PktsDropped are the device's cumulative
// counters (a decrease means the device counter was reset or the backend
// restarted); BPSDropped and PPSDropped are current rates. Only a backend
// that reads real counters reports them: a diversion nobody measures has
// no counters at all (RFC 9132 §4.4.2 keys 25–28 are then absent).
type Counters struct {
	BytesDropped, PktsDropped uint64
	BPSDropped, PPSDropped    uint64
	// Matched is set for a data-channel filter (Key.ACL) by a backend that
	// counts its entries: per Filter, in the order of Diversion.Filters,
	// the cumulative packets and bytes the filter matched (RFC 8783
	// statistics: matched-packets, matched-octets). The sum over an ACE's
	// filters is the ACE's statistics. PktsDropped and BytesDropped of such
	// a key are what its filters dropped (discard: all they matched;
	// rate-limit: what was above the rate). Nil for a mitigation.
	Matched []FilterCount
}

// FilterCount is what one Filter matched.
type FilterCount struct {
	Packets, Bytes uint64
}

// Measurements receives a backend's counter samples for a key. Samples are
// not persisted one by one: they may be frequent.
type Measurements func(backend string, k Key, c Counters)

// Syncer is implemented by backends that can converge on a whole set at
// once (after a restart): everything in all is applied, anything else
// withdrawn. Outcomes are reported through Updates.
type Syncer interface {
	Sync(ctx context.Context, all []Diversion) error
}
