// Package dns is the DNS diversion backend: for a mitigation whose scope
// names target-fqdn or target-uri hosts (or a target-prefix the config maps
// to names), it replaces the names' A/AAAA records in their zone with the
// scrubbing centre's addresses, using RFC 2136 dynamic updates signed with
// TSIG (RFC 8945, HMAC-SHA256) over TCP, and puts the original records back
// when the mitigation ends.
//
// The original RRsets are written to the store before any update is sent,
// and every update is a prerequisite-guarded swap (RFC 2136 §2.4), so a
// crash at any point is recovered by Sync or Withdraw on a new Backend over
// the same store. A record type an operator changed during the attack is
// never overwritten: it is kept as a Conflict (in the store, until
// ClearConflict) while the other type is restored. Names are reference-counted:
// two mitigations diverting one name share one original.
package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/store"
)

// Backend diverts names by dynamic DNS update. It implements
// divert.Diverter and divert.Syncer. Operations are serialized.
type Backend struct {
	cfg     Config
	st      Store
	log     *slog.Logger
	updates divert.Updates
	sem     chan struct{} // one operation at a time
	stats   updateStats
}

var (
	_ divert.Diverter = (*Backend)(nil)
	_ divert.Syncer   = (*Backend)(nil)
)

// New validates cfg and returns a backend keeping its state in st. log may
// be nil (discard); updates (may be nil) receives the outcomes of Sync.
func New(cfg Config, st Store, log *slog.Logger, updates divert.Updates) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("dns: no store")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Backend{cfg: cfg.normalized(), st: st, log: log.With("diverter", "dns"), updates: updates,
		sem: make(chan struct{}, 1)}, nil
}

// Name returns "dns".
func (b *Backend) Name() string { return "dns" }

func (b *Backend) lock(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dns: waiting for another operation: %w", ctx.Err())
	}
}

func (b *Backend) unlock() { <-b.sem }

// target is one name to divert and its zone.
type target struct {
	name string
	zone Zone
}

// targets returns the names of d in configured zones (d.FQDNs and names
// mapped from d.Prefixes), and the names in no configured zone. A name the
// client domain does not own is an error naming it. A data-channel filter
// (Key.ACL, Filters) has none: it filters traffic, it does not divert it.
func (b *Backend) targets(d divert.Diversion) ([]target, []string, error) {
	if d.Key.ACL != "" || len(d.Filters) > 0 {
		return nil, nil, nil
	}
	seen := map[string]bool{}
	var out []target
	var skipped []string
	var errs []error
	add := func(name string) {
		if name = canonical(name); name == "" || seen[name] {
			return
		}
		seen[name] = true
		z, ok := zoneOf(b.cfg.Zones, name)
		switch {
		case !ok || !validName(name):
			skipped = append(skipped, name)
		case !z.owns(d.Domain, name):
			errs = append(errs, &Error{Op: "check", Name: name, Zone: z.Name, Err: fmt.Errorf("%w %q", ErrNotOwned, d.Domain)})
		default:
			out = append(out, target{name: name, zone: z})
		}
	}
	for _, f := range d.FQDNs {
		add(f)
	}
	for _, z := range b.cfg.Zones {
		for p, names := range z.Prefixes {
			if slices.ContainsFunc(d.Prefixes, p.Overlaps) {
				for _, n := range names {
					add(n)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b target) int { return strings.Compare(a.name, b.name) })
	return out, skipped, errors.Join(errs...)
}

// Handles reports whether d names anything in a configured zone
// (implements divert.Handler): the others are never pending on DNS.
func (b *Backend) Handles(d divert.Diversion) bool {
	want, _, err := b.targets(d)
	return len(want) > 0 || err != nil
}

// Apply diverts d's names (an idempotent upsert by d.Key). Names in no
// configured zone are ignored (Status 0 when none is left); a name the
// client domain does not own fails the whole request and changes nothing.
// Detail reports each diverted name ("www.svc.example. A/AAAA -> 192.0.2.80
// (was 203.0.113.10)") and each failure with its DNS response code.
func (b *Backend) Apply(ctx context.Context, d divert.Diversion) (divert.Applied, error) {
	want, skipped, err := b.targets(d)
	if err != nil {
		b.log.Warn("diversion refused", "cuid", d.Key.CUID, "mid", d.Key.MID, "domain", d.Domain, "err", err)
		return divert.Applied{Status: dots.StatusInProgress, Detail: "refused: " + err.Error()}, err
	}
	if err := b.lock(ctx); err != nil {
		return divert.Applied{Status: dots.StatusInProgress, Detail: "failed: " + err.Error()}, err
	}
	defer b.unlock()

	var errs []error
	old, _, err := b.loadDiversion(d.Key)
	if err != nil {
		return divert.Applied{Status: dots.StatusInProgress, Detail: "failed: " + err.Error()}, err
	}
	for _, name := range old.Names {
		if !slices.ContainsFunc(want, func(t target) bool { return t.name == name }) {
			errs = append(errs, b.release(ctx, d.Key, name))
		}
	}
	if len(want) == 0 {
		return divert.Applied{}, errors.Join(errs...)
	}
	var notes []string
	diverted := 0
	for _, t := range want {
		rec, err := b.hold(ctx, d, t)
		if err != nil {
			b.log.Warn("diversion failed", "cuid", d.Key.CUID, "mid", d.Key.MID, "name", t.name, "zone", t.zone.Name, "err", err)
			errs = append(errs, err)
			notes = append(notes, t.name+" failed: "+err.Error())
			continue
		}
		diverted++
		notes = append(notes, fmt.Sprintf("%s A/AAAA -> %s (was %s)", t.name, rec.Diverted, rec.Original))
	}
	if len(skipped) > 0 {
		notes = append(notes, "not in a configured zone: "+strings.Join(skipped, ", "))
	}
	a := divert.Applied{Status: dots.StatusInProgress, Detail: strings.Join(notes, "; ")}
	if diverted == len(want) {
		a.Status = dots.StatusMitigated
	}
	return a, errors.Join(errs...)
}

// hold makes d hold t.name and makes sure the name is diverted.
func (b *Backend) hold(ctx context.Context, d divert.Diversion, t target) (nameRec, error) {
	key := d.Key.String()
	rec, found, err := b.loadName(t.name)
	if err != nil {
		return rec, err
	}
	if !found {
		return b.divertNew(ctx, d, t)
	}
	if !slices.Contains(rec.Holders, key) {
		rec.Holders = append(rec.Holders, key)
		if err := b.save(ctx, d.Key, d.Domain, t.name, &rec, true); err != nil {
			return rec, err
		}
	}
	cur, err := b.read(ctx, t.zone, t.name)
	if err != nil {
		return rec, err
	}
	switch {
	case cur.same(rec.Diverted):
	case cur.same(rec.Original) && rec.State != stateDiverted:
		// A crash or a failure left the divert (or a restore) unfinished.
		if err := b.swap(ctx, t.zone, t.name, "divert", rec.Original, rec.Diverted); err != nil {
			return rec, err
		}
	default:
		return rec, newError("divert", t.name, t.zone, nil,
			fmt.Errorf("%w: the name has %s, the diversion put %s (original %s)", ErrConflict, cur, rec.Diverted, rec.Original))
	}
	if rec.State != stateDiverted {
		rec.State = stateDiverted
		if err := b.save(ctx, d.Key, d.Domain, t.name, &rec, true); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// divertNew reads a name's records, stores them, then swaps them for the
// scrubbing addresses.
func (b *Backend) divertNew(ctx context.Context, d divert.Diversion, t target) (nameRec, error) {
	orig, err := b.read(ctx, t.zone, t.name)
	if err != nil {
		return nameRec{}, err
	}
	if orig.empty() {
		return nameRec{}, newError("read", t.name, t.zone, nil, ErrNoAddress)
	}
	rec := nameRec{Name: t.name, Zone: t.zone.Name, Original: orig, Holders: []string{d.Key.String()}, State: stateDiverting,
		Diverted: scrubSet(t.zone.scrubbing(d.Domain), b.cfg.TTL)}
	if err := b.save(ctx, d.Key, d.Domain, t.name, &rec, true); err != nil {
		return rec, err
	}
	if err := b.swap(ctx, t.zone, t.name, "divert", rec.Original, rec.Diverted); err != nil {
		if !errors.Is(err, ErrUnreachable) {
			// A definite answer: nothing changed in DNS, forget the name.
			if serr := b.save(ctx, d.Key, "", t.name, nil, false); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return rec, err
	}
	rec.State = stateDiverted
	b.log.Info("name diverted", "cuid", d.Key.CUID, "mid", d.Key.MID, "name", t.name, "zone", t.zone.Name,
		"to", rec.Diverted.String(), "was", rec.Original.String())
	return rec, b.save(ctx, d.Key, d.Domain, t.name, &rec, true)
}

// release drops k's hold on name and restores the original records when
// no diversion holds it any more.
func (b *Backend) release(ctx context.Context, k divert.Key, name string) error {
	rec, found, err := b.loadName(name)
	if err != nil {
		return err
	}
	if !found {
		return b.save(ctx, k, "", name, nil, false)
	}
	rec.Holders = slices.DeleteFunc(rec.Holders, func(h string) bool { return h == k.String() })
	if len(rec.Holders) > 0 {
		return b.save(ctx, k, "", name, &rec, false)
	}
	z, ok := zoneOf(b.cfg.Zones, name)
	if !ok || z.Name != rec.Zone {
		err := &Error{Op: "restore", Name: name, Zone: rec.Zone,
			Err: fmt.Errorf("zone no longer configured: restore %s by hand (diverted to %s)", rec.Original, rec.Diverted)}
		b.log.Error("restore impossible", "cuid", k.CUID, "mid", k.MID, "name", name, "err", err)
		return errors.Join(err, b.save(ctx, k, "", name, nil, false))
	}
	if rec.State != stateRestoring {
		rec.State = stateRestoring
		if err := b.save(ctx, k, "", name, &rec, true); err != nil {
			return err
		}
	}
	conflicts, err := b.restore(ctx, z, k, rec)
	if err != nil {
		b.log.Warn("restore failed, kept for a later withdraw or sync", "cuid", k.CUID, "mid", k.MID,
			"name", name, "zone", z.Name, "err", err)
		return err
	}
	ops := make([]store.Op, 0, len(conflicts))
	for _, c := range conflicts {
		b.log.Warn("restore conflict: the operator's records are kept until the conflict is cleared",
			"cuid", k.CUID, "mid", k.MID, "name", c.Name, "zone", z.Name, "type", c.Type,
			"found", orNone(c.Found), "diverted", orNone(c.Diverted), "original", orNone(c.Original))
		ops = append(ops, putOp(BucketConflicts, conflictKey(c.Name, c.Type), c))
	}
	if len(conflicts) == 0 {
		b.log.Info("name restored", "cuid", k.CUID, "mid", k.MID, "name", name, "zone", z.Name, "to", rec.Original.String())
	}
	if err := b.save(ctx, k, "", name, nil, false, ops...); err != nil {
		return err
	}
	return conflictError(z, name, conflicts)
}

// Withdraw ends k's diversion: each name no other diversion holds gets its
// original records back, by a swap whose prerequisite is the diverted
// RRset. A record type an operator changed meanwhile is left as the
// operator set it, the other type is restored, the conflict is kept in
// the store (Conflicts) and the error (ErrConflict) names the name and the
// type. A failed restore
// stays in the store; Withdraw or Sync again retries it. Unknown k: nil.
func (b *Backend) Withdraw(ctx context.Context, k divert.Key) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.unlock()
	d, found, err := b.loadDiversion(k)
	if err != nil || !found {
		return err
	}
	var errs []error
	for _, name := range d.Names {
		errs = append(errs, b.release(ctx, k, name))
	}
	return errors.Join(errs...)
}

// Sync converges on exactly all after a restart: diversions in the store
// but not in all are withdrawn (their originals restored), then every
// diversion in all is applied again and its outcome sent to Updates. It is
// idempotent: calling it again retries whatever failed.
func (b *Backend) Sync(ctx context.Context, all []divert.Diversion) error {
	live := map[divert.Key]bool{}
	for _, d := range all {
		live[d.Key] = true
	}
	stored, err := b.diversions()
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range stored {
		if !live[d.key()] {
			errs = append(errs, b.Withdraw(ctx, d.key()))
		}
	}
	for _, d := range all {
		a, err := b.Apply(ctx, d)
		errs = append(errs, err)
		if b.updates != nil {
			b.updates(b.Name(), d.Key, a)
		}
	}
	return errors.Join(errs...)
}

// Check refuses, before the request is accepted, a name in a configured
// zone that the client domain does not own (implements divert.Checker).
func (b *Backend) Check(d divert.Diversion) error {
	_, _, err := b.targets(d)
	return err
}

// IsDiversionAddr reports whether a is one of the scrubbing addresses this
// backend writes in place of a diverted name's records (Zone.Scrubbing and
// every Zone.ClientScrubbing, of every zone). A resolver answering such an
// address for a target-fqdn is seeing the diversion itself, not the name's
// own address. IPv4-mapped IPv6 addresses match their IPv4 form.
func (b *Backend) IsDiversionAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, z := range b.cfg.Zones {
		if slices.ContainsFunc(z.Scrubbing, func(s netip.Addr) bool { return s.Unmap() == a }) {
			return true
		}
		for _, addrs := range z.ClientScrubbing {
			if slices.ContainsFunc(addrs, func(s netip.Addr) bool { return s.Unmap() == a }) {
				return true
			}
		}
	}
	return false
}
