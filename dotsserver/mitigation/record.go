package mitigation

import (
	"net/netip"
	"slices"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/escalate"
)

// Key identifies a mitigation request: the client and its mid.
type Key struct {
	CUID string `json:"cuid"`
	MID  uint32 `json:"mid"`
}

// Record is one mitigation request as the server keeps it (and persists it).
type Record struct {
	Key
	Domain       string            `json:"domain"`
	Scope        dots.Scope        `json:"scope"`                  // targets as requested (no lifetime, no status)
	Prefixes     []netip.Prefix    `json:"prefixes"`               // every address the request covers (prefixes + resolved names)
	FromNames    []netip.Prefix    `json:"from_names,omitempty"`   // the Prefixes that came from resolving names
	NamesExpire  time.Time         `json:"names_expire,omitempty"` // when the names' addresses are due to be resolved again
	Lifetime     int64             `json:"lifetime"`               // granted at the last create/refresh, -1 indefinite
	Expires      time.Time         `json:"expires"`                // zero when indefinite
	Start        time.Time         `json:"start"`                  // mitigation-start, zero while status 8
	Status       dots.Status       `json:"status"`
	Trigger      bool              `json:"trigger"` // trigger-mitigation
	TerminateAt  time.Time         `json:"terminate_at,omitempty"`
	Terminations int               `json:"terminations,omitempty"` // withdrawals seen, for the exponential active-but-terminating period
	AttackStatus dots.AttackStatus `json:"attack_status,omitempty"`
	// AttackAt is when the client last reported attack-status, and
	// AttackSince when it first reported the value it reports now (since
	// the last escalation step, if later).
	AttackAt    time.Time `json:"attack_at,omitempty"`
	AttackSince time.Time `json:"attack_since,omitempty"`
	// Escalation is where the request stands on its domain's escalation
	// ladder (nil: no ladder, or the client chose the countermeasure). It
	// is replaced, never changed in place, so copies of a record may
	// share it.
	Escalation *escalate.Position        `json:"escalation,omitempty"`
	Conflict   *dots.ConflictInformation `json:"conflict,omitempty"`
	Note       string                    `json:"note,omitempty"` // what the mitigator said (e.g. none configured)
	// Counters is what the mitigator measured of the traffic it dropped:
	// nil when nothing measures this request (the status then carries no
	// counters at all). Set on the copies the service hands out.
	Counters *Counters `json:"-"`
}

// Counters are the measured drop counters of a request (RFC 9132 §4.4.2:
// bytes-dropped, bps-dropped, pkts-dropped, pps-dropped).
type Counters struct {
	BytesDropped, PktsDropped uint64 // totals, monotonic for the client
	BPSDropped, PPSDropped    uint64 // current rates
}

// Active reports whether the request is (or should be) diverting traffic.
func (r *Record) Active() bool {
	switch r.Status {
	case dots.StatusInProgress, dots.StatusMitigated, dots.StatusAttackStopped,
		dots.StatusExceededCapability, dots.StatusClientWithdrawn:
		return true
	}
	return false
}

// Remaining returns the remaining lifetime in seconds (-1 indefinite).
func (r *Record) Remaining(now time.Time) int64 {
	if r.Lifetime < 0 {
		return -1
	}
	d := r.Expires.Sub(now)
	if d < 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// sameParams reports whether a request carries the same parameters as the
// record apart from lifetime and attack-status (RFC 9132 §4.4.1 refresh).
func (r *Record) sameParams(s *dots.Scope, trigger bool) bool {
	a := r.Scope
	return trigger == r.Trigger && a.Countermeasure == s.Countermeasure &&
		slices.Equal(a.TargetPrefix, s.TargetPrefix) &&
		slices.EqualFunc(a.TargetPortRange, s.TargetPortRange, portRangeEqual) &&
		slices.Equal(a.TargetProtocol, s.TargetProtocol) &&
		slices.Equal(a.TargetFQDN, s.TargetFQDN) &&
		slices.Equal(a.TargetURI, s.TargetURI) &&
		slices.Equal(a.AliasName, s.AliasName)
}

func portRangeEqual(a, b dots.PortRange) bool {
	return a.LowerPort == b.LowerPort && upper(a) == upper(b)
}

func upper(p dots.PortRange) uint16 {
	if p.UpperPort == nil {
		return p.LowerPort
	}
	return *p.UpperPort
}

// overlaps reports whether two requests share a target: an address, a
// name, a URI or an alias (RFC 9132 §4.4.1 overlap rule).
func (r *Record) overlaps(o *Record) bool {
	for _, p := range r.Prefixes {
		for _, q := range o.Prefixes {
			if p.Overlaps(q) {
				return true
			}
		}
	}
	return shareString(r.Scope.TargetFQDN, o.Scope.TargetFQDN) ||
		shareString(r.Scope.TargetURI, o.Scope.TargetURI) ||
		shareString(r.Scope.AliasName, o.Scope.AliasName)
}

func shareString(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// overlapPrefixes returns r's prefixes that overlap o.
func (r *Record) overlapPrefixes(o *Record) []string {
	var out []string
	for _, p := range r.Prefixes {
		for _, q := range o.Prefixes {
			if p.Overlaps(q) {
				out = append(out, p.String())
				break
			}
		}
	}
	return out
}

// Status renders the record as a status scope entry (RFC 9132 §4.4.2).
// withConfig and withState select the 'c' query's config and non-config nodes.
func (r *Record) StatusScope(now time.Time, withConfig, withState bool) dots.Scope {
	s := dots.Scope{MID: dots.Ptr(r.MID)}
	if withConfig {
		c := r.Scope
		s.TargetPrefix, s.TargetPortRange, s.TargetProtocol = c.TargetPrefix, c.TargetPortRange, c.TargetProtocol
		s.TargetFQDN, s.TargetURI, s.AliasName = c.TargetFQDN, c.TargetURI, c.AliasName
		s.TriggerMitigation = c.TriggerMitigation
		s.Countermeasure = c.Countermeasure
		s.ACLList = c.ACLList // RFC 9133: the ACLs the request controls
	}
	s.Lifetime = dots.Ptr(r.Remaining(now))
	if withState {
		s.Status = dots.Ptr(r.Status)
		if !r.Start.IsZero() && r.Status != dots.StatusSignalLoss {
			s.MitigationStart = dots.Ptr(dots.U64(r.Start.Unix()))
		}
		s.ConflictInformation = r.Conflict
		// Counters only when something measured them: a zero would read
		// as "nothing dropped". attack-status is the client's to send
		// (RFC 9132 §4.4.2): it is kept, not echoed.
		if c := r.Counters; c != nil {
			s.BytesDropped, s.PktsDropped = dots.Ptr(dots.U64(c.BytesDropped)), dots.Ptr(dots.U64(c.PktsDropped))
			s.BpsDropped, s.PpsDropped = dots.Ptr(dots.U64(c.BPSDropped)), dots.Ptr(dots.U64(c.PPSDropped))
		}
		s.Note = r.StatusNote()
	}
	return s
}

// StatusNote is the note the client sees: the request's place on its
// escalation ladder, then what the mitigator said.
func (r *Record) StatusNote() string {
	if r.Escalation == nil || !r.Active() {
		return r.Note
	}
	if r.Note == "" {
		return r.Escalation.Note()
	}
	return r.Escalation.Note() + "; " + r.Note
}
