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
	Expires   time.Time // zero: indefinite
}

// Diverter is one diversion backend. Apply is an idempotent upsert by Key;
// Withdraw of an unknown key returns nil.
type Diverter interface {
	Name() string
	Apply(ctx context.Context, d Diversion) error
	Withdraw(ctx context.Context, k Key) error
}

// Syncer is implemented by backends that can converge on a whole set at
// once (after a restart): everything in all is applied, anything else withdrawn.
type Syncer interface {
	Sync(ctx context.Context, all []Diversion) error
}

// Outcome is the combined result of applying one diversion.
type Outcome struct {
	Status dots.Status // 1 in progress, 2 mitigated, 4 exceeded capability
	Note   string      // human-readable, e.g. which backend failed or that none is configured
	Err    error
}

// NoMitigator is the note reported when no backend is configured.
const NoMitigator = "no mitigator is configured on this server: the request is accepted and kept, but no traffic is diverted"

// Orchestrator fans diversions out to backends.
type Orchestrator struct {
	backends []Diverter
}

// NewOrchestrator returns an orchestrator over the given backends (none is allowed).
func NewOrchestrator(backends ...Diverter) *Orchestrator { return &Orchestrator{backends: backends} }

// Configured reports whether any backend is configured.
func (o *Orchestrator) Configured() bool { return len(o.backends) > 0 }

// Apply applies d to every backend. With no backend the mitigation stays in
// progress (status 1) with NoMitigator as the note — never a fake success.
func (o *Orchestrator) Apply(ctx context.Context, d Diversion) Outcome {
	if len(o.backends) == 0 {
		return Outcome{Status: dots.StatusInProgress, Note: NoMitigator}
	}
	var errs []error
	var ok []string
	for _, b := range o.backends {
		if err := b.Apply(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			continue
		}
		ok = append(ok, b.Name())
	}
	if len(errs) > 0 {
		return Outcome{Status: dots.StatusInProgress, Note: "diversion failed: " + errors.Join(errs...).Error(), Err: errors.Join(errs...)}
	}
	return Outcome{Status: dots.StatusMitigated, Note: "diverted by " + strings.Join(ok, ", ")}
}

// Withdraw removes k from every backend.
func (o *Orchestrator) Withdraw(ctx context.Context, k Key) error {
	var errs []error
	for _, b := range o.backends {
		if err := b.Withdraw(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("%s: withdraw %s: %w", b.Name(), k, err))
		}
	}
	return errors.Join(errs...)
}

// Sync converges every backend on exactly all (start-up reconciliation).
func (o *Orchestrator) Sync(ctx context.Context, all []Diversion) error {
	var errs []error
	for _, b := range o.backends {
		s, ok := b.(Syncer)
		if !ok {
			for _, d := range all {
				if err := b.Apply(ctx, d); err != nil {
					errs = append(errs, fmt.Errorf("%s: apply %s: %w", b.Name(), d.Key, err))
				}
			}
			continue
		}
		if err := s.Sync(ctx, all); err != nil {
			errs = append(errs, fmt.Errorf("%s: sync: %w", b.Name(), err))
		}
	}
	return errors.Join(errs...)
}
