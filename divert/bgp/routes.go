package bgp

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/osrg/gobgp/v4/pkg/apiutil"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
)

// Check refuses, before the request is accepted, what policy or the safety
// rails forbid (implements divert.Checker).
func (b *Backend) Check(d divert.Diversion) error {
	_, err := b.checkedPlan(d)
	return err
}

// checkedPlan builds d's routes and applies the safety rails to them.
func (b *Backend) checkedPlan(d divert.Diversion) (*plan, error) {
	p, err := b.plan(d)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p.routes) + b.domainRoutes[d.Domain]
	if old := b.entries[d.Key]; old != nil && old.domain == d.Domain {
		n -= len(old.routes)
	}
	if n > b.cfg.MaxRoutesPerDomain {
		return nil, fmt.Errorf("client domain %q would have %d routes, more than the %d this server announces for one domain", d.Domain, n, b.cfg.MaxRoutesPerDomain)
	}
	return p, nil
}

// Apply announces the routes of d (idempotent upsert by key).
func (b *Backend) Apply(_ context.Context, d divert.Diversion) (divert.Applied, error) {
	p, err := b.checkedPlan(d)
	if err != nil {
		return divert.Applied{Status: dots.StatusInProgress, Detail: "refused: " + err.Error()}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a, err := b.applyLocked(d, p, nil)
	return b.stampLocked(a), err
}

// applyLocked installs the plan of d. With pending set, new routes are
// queued there for one AddPath call (see Sync) instead of added one by one.
func (b *Backend) applyLocked(d divert.Diversion, p *plan, pending *[]*route) (divert.Applied, error) {
	old := b.entries[d.Key]
	if a, over := b.overBudgetLocked(p); over {
		b.log.Warn("flowspec budget exceeded", "cuid", d.Key.CUID, "mid", d.Key.MID, "detail", a.Detail)
		e := &entry{key: d.Key, domain: d.Domain, kind: p.kind, applied: a}
		if old != nil && len(old.routes) > 0 {
			// The routes of the key's previous version stay announced,
			// and on the books, so that Withdraw still removes them.
			e.domain, e.kind, e.routes, e.note = old.domain, old.kind, old.routes, old.note
			a.Detail += fmt.Sprintf("; the %d routes announced before for it stay until it is withdrawn", len(old.routes))
			e.applied = a
		}
		b.setEntryLocked(e)
		return a, nil
	}
	e := &entry{key: d.Key, domain: d.Domain, kind: p.kind, note: p.note}
	if len(p.routes) == 0 {
		e.applied = divert.Applied{Detail: p.note} // nothing to announce (an ACL of accept entries)
	}
	var errs []error
	for _, r := range p.routes {
		if err := b.addRefLocked(d.Key, r, pending); err != nil {
			errs = append(errs, err)
			continue
		}
		e.routes = append(e.routes, r.id)
	}
	if old != nil {
		for _, id := range old.routes {
			if !slices.Contains(e.routes, id) {
				b.dropRefLocked(d.Key, id)
			}
		}
	}
	e.applied = b.evaluateLocked(e)
	if err := errors.Join(errs...); err != nil {
		e.applied = divert.Applied{Status: dots.StatusInProgress, Detail: "announcing failed: " + err.Error()}
	}
	b.setEntryLocked(e)
	return e.applied, errors.Join(errs...)
}

// setEntryLocked stores e in place of the entry of its key.
func (b *Backend) setEntryLocked(e *entry) {
	b.deleteEntryLocked(e.key)
	b.entries[e.key] = e
	b.domainRoutes[e.domain] += len(e.routes)
}

func (b *Backend) deleteEntryLocked(k divert.Key) {
	old, ok := b.entries[k]
	if !ok {
		return
	}
	if b.domainRoutes[old.domain] -= len(old.routes); b.domainRoutes[old.domain] <= 0 {
		delete(b.domainRoutes, old.domain)
	}
	delete(b.entries, k)
}

func (b *Backend) addRefLocked(k divert.Key, r *route, pending *[]*route) error {
	if cur, ok := b.routes[r.id]; ok {
		cur.refs[k] = true
		return nil
	}
	if isFlowSpec(r.family) {
		b.buckets.place(r)
	}
	switch {
	case b.cfg.DryRun:
		b.log.Info("dry-run: would announce", "route", r.text, "cuid", k.CUID, "mid", k.MID)
	case pending != nil:
		*pending = append(*pending, r)
	default:
		b.announceQueuedLocked(r)
		if _, err := b.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{r.path}}); err != nil {
			b.buckets.release(r)
			return fmt.Errorf("announce %s: %w", r.text, err)
		}
		b.log.Info("route announced", "route", r.text, "cuid", k.CUID, "mid", k.MID)
	}
	r.refs = map[divert.Key]bool{k: true}
	b.routes[r.id] = r
	b.nlri.add(r)
	if isFlowSpec(r.family) {
		b.flowCount++
	}
	return nil
}

// forgetRouteLocked removes a route from the books (not from the RIB). held
// and next are as nlriIndex.remove returns them.
func (b *Backend) forgetRouteLocked(r *route) (held bool, next *route) {
	delete(b.routes, r.id)
	if isFlowSpec(r.family) {
		b.flowCount--
		b.buckets.release(r)
	}
	return b.nlri.remove(r)
}

func (b *Backend) dropRefLocked(k divert.Key, id string) {
	r, ok := b.routes[id]
	if !ok {
		return
	}
	delete(r.refs, k)
	if len(r.refs) > 0 {
		return
	}
	held, next := b.forgetRouteLocked(r)
	if b.cfg.DryRun {
		b.log.Info("dry-run: would withdraw", "route", r.text)
		return
	}
	switch {
	case next != nil && !held:
		// Another route with this NLRI replaced r in the RIB already
		// (an escalation step: the on-ramp became RTBH).
		b.log.Info("route replaced", "route", r.text, "by", next.text)
		return
	case next != nil:
		// r was in the RIB over another route with its NLRI: that one
		// is announced again instead of a withdrawal.
		b.announceQueuedLocked(next)
		if _, err := b.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{next.path}}); err != nil {
			b.log.Error("announcing the remaining route failed", "route", next.text, "err", err)
			return
		}
		b.log.Info("route replaced", "route", r.text, "by", next.text)
		return
	}
	b.announcementsSentLocked()
	if isFlowSpec(r.family) {
		b.paceWithdrawLocked(r.path.Nlri.Len())
	}
	if err := b.s.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{r.path}}); err != nil {
		b.log.Error("withdraw failed", "route", r.text, "err", err)
		return
	}
	b.log.Info("route withdrawn", "route", r.text)
}

// Withdraw removes the routes of k that no other mitigation needs.
func (b *Backend) Withdraw(_ context.Context, k divert.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[k]
	if !ok {
		return nil
	}
	for _, id := range e.routes {
		b.dropRefLocked(k, id)
	}
	b.deleteEntryLocked(k)
	return nil
}

// overBudgetLocked reports status 4 when the new FlowSpec rules would exceed
// a receiving neighbor's budget. A rule already announced for another key
// is the same route (see addRefLocked) and adds nothing.
func (b *Backend) overBudgetLocked(p *plan) (divert.Applied, bool) {
	added := 0
	for _, r := range p.routes {
		if _, ok := b.routes[r.id]; isFlowSpec(r.family) && !ok {
			added++
		}
	}
	if added == 0 {
		return divert.Applied{}, false
	}
	total := b.flowCount
	for _, addr := range sortedPeers(b.peers) {
		ps := b.peers[addr]
		if !b.getsFlowSpec(ps.n) {
			continue
		}
		if total+added > ps.n.FlowSpecBudget {
			return divert.Applied{Status: dots.StatusExceededCapability,
				Detail: fmt.Sprintf("%d FlowSpec rules would exceed the budget of %d for neighbor %s; nothing announced", total+added, ps.n.FlowSpecBudget, ps.n.Name)}, true
		}
	}
	return divert.Applied{}, false
}

// getsFlowSpec reports whether the export policy passes FlowSpec routes
// to n (installPolicy: it cannot tell FlowSpec kinds apart).
func (b *Backend) getsFlowSpec(n Neighbor) bool {
	return n.receives(KindFlowSpec) || (n.receives(KindScrubbing) && b.cfg.Scrubbing.Style == "flowspec-redirect")
}
