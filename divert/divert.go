// Package divert hands accepted DOTS mitigations to the backends that divert
// attack traffic (RFC 8811 §2: the DOTS server passes the request to a
// mitigator and MUST report the scope actually applied). It holds the
// Diversion type every backend shares, the small Diverter interface a
// backend implements, and the Orchestrator that fans a diversion out to the
// configured backends and reports each backend's outcome.
package divert

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
)

// Key identifies a diversion: the client's cuid and the request's mid.
type Key struct {
	CUID string
	MID  uint32
}

func (k Key) String() string { return fmt.Sprintf("%s/%d", k.CUID, k.MID) }

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

// Outcome is the combined result of applying one diversion.
type Outcome struct {
	Status dots.Status // 1 in progress, 2 mitigated, 4 exceeded capability
	Note   string      // human-readable: what each backend applied or why it failed
	Err    error
}

// NoMitigator is the note reported when no backend is configured.
const NoMitigator = "no mitigator is configured on this server: the request is accepted and kept, but no traffic is diverted"

// Orchestrator fans diversions out to backends and combines their outcomes.
type Orchestrator struct {
	backends []Diverter
	mu       sync.Mutex
	last     map[Key]map[string]Applied // latest outcome per backend
}

// NewOrchestrator returns an orchestrator over the given backends (none is allowed).
func NewOrchestrator(backends ...Diverter) *Orchestrator {
	return &Orchestrator{backends: backends, last: map[Key]map[string]Applied{}}
}

// Configured reports whether any backend is configured.
func (o *Orchestrator) Configured() bool { return len(o.backends) > 0 }

// Apply applies d to every backend. With no backend the mitigation stays in
// progress (status 1) with NoMitigator as the note — never a fake success.
func (o *Orchestrator) Apply(ctx context.Context, d Diversion) Outcome {
	if len(o.backends) == 0 {
		return Outcome{Status: dots.StatusInProgress, Note: NoMitigator}
	}
	var errs []error
	for _, b := range o.backends {
		a, err := b.Apply(ctx, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			if a.Status == 0 {
				a = Applied{Status: dots.StatusInProgress, Detail: "failed: " + err.Error()}
			}
		}
		o.record(b.Name(), d.Key, a)
	}
	out := o.Combined(d.Key)
	out.Err = errors.Join(errs...)
	return out
}

// Check asks every backend that checks whether it would refuse d.
func (o *Orchestrator) Check(d Diversion) error {
	for _, b := range o.backends {
		if c, ok := b.(Checker); ok {
			if err := c.Check(d); err != nil {
				return fmt.Errorf("%s: %w", b.Name(), err)
			}
		}
	}
	return nil
}

// Update records a backend's later outcome and returns the combined one.
func (o *Orchestrator) Update(backend string, k Key, a Applied) Outcome {
	o.record(backend, k, a)
	return o.Combined(k)
}

func (o *Orchestrator) record(backend string, k Key, a Applied) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.last[k]
	if m == nil {
		m = map[string]Applied{}
		o.last[k] = m
	}
	m[backend] = a
}

// Combined is the outcome over every backend that handles the key: 4 if
// any refused it for capability, 2 only when all of them diverted, else 1.
func (o *Orchestrator) Combined(k Key) Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	var notes []string
	handled, mitigated, exceeded := 0, 0, false
	for _, b := range o.backends {
		a, ok := o.last[k][b.Name()]
		if !ok || a.Status == 0 {
			continue
		}
		handled++
		switch a.Status {
		case dots.StatusMitigated:
			mitigated++
		case dots.StatusExceededCapability:
			exceeded = true
		}
		if a.Detail != "" {
			notes = append(notes, b.Name()+": "+a.Detail)
		}
	}
	switch {
	case handled == 0:
		return Outcome{Status: dots.StatusInProgress, Note: "no configured mitigator handles this scope"}
	case exceeded:
		return Outcome{Status: dots.StatusExceededCapability, Note: strings.Join(notes, "; ")}
	case mitigated == handled:
		return Outcome{Status: dots.StatusMitigated, Note: strings.Join(notes, "; ")}
	}
	return Outcome{Status: dots.StatusInProgress, Note: strings.Join(notes, "; ")}
}

// Withdraw removes k from every backend.
func (o *Orchestrator) Withdraw(ctx context.Context, k Key) error {
	var errs []error
	for _, b := range o.backends {
		if err := b.Withdraw(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("%s: withdraw %s: %w", b.Name(), k, err))
		}
	}
	o.mu.Lock()
	delete(o.last, k)
	o.mu.Unlock()
	return errors.Join(errs...)
}

// Sync converges every backend on exactly all (start-up reconciliation) and
// returns the combined outcome of each diversion.
func (o *Orchestrator) Sync(ctx context.Context, all []Diversion) (map[Key]Outcome, error) {
	var errs []error
	for _, b := range o.backends {
		s, ok := b.(Syncer)
		if !ok {
			for _, d := range all {
				a, err := b.Apply(ctx, d)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: apply %s: %w", b.Name(), d.Key, err))
				}
				o.record(b.Name(), d.Key, a)
			}
			continue
		}
		if err := s.Sync(ctx, all); err != nil {
			errs = append(errs, fmt.Errorf("%s: sync: %w", b.Name(), err))
		}
	}
	out := map[Key]Outcome{}
	for _, d := range all {
		if len(o.backends) == 0 {
			out[d.Key] = Outcome{Status: dots.StatusInProgress, Note: NoMitigator}
			continue
		}
		out[d.Key] = o.Combined(d.Key)
	}
	return out, errors.Join(errs...)
}
