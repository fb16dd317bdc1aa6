package bgp

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	api "github.com/osrg/gobgp/v4/api"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
)

// NeighborChanges tells what SetNeighbors changed, by neighbor name.
type NeighborChanges struct {
	Added, Removed, Changed []string
}

// SetNeighbors makes ns the speaker's neighbors while it runs (a
// configuration reload). A neighbor no longer listed is deleted: its
// session ends and the router drops our routes. A new one is added and
// gets the routes of the kinds it receives once established. One whose
// settings changed is deleted and added again (its session restarts).
// The others, and every route, are left alone. The export policy is
// replaced by one for ns before a new neighbor is added, so no neighbor
// ever gets a kind it does not receive. Calls must not overlap.
func (b *Backend) SetNeighbors(ctx context.Context, ns []Neighbor) (NeighborChanges, error) {
	cfg := b.cfg
	cfg.Neighbors = append([]Neighbor(nil), ns...)
	if err := cfg.Validate(); err != nil {
		return NeighborChanges{}, err
	}
	ns = cfg.Neighbors
	b.mu.Lock()
	cur, started := b.cfg.Neighbors, b.started
	b.mu.Unlock()
	gone, fresh, ch := neighborDiff(cur, ns)
	if len(gone)+len(fresh) == 0 {
		return ch, nil
	}
	b.mu.Lock()
	for _, n := range gone {
		delete(b.peers, n.Address) // its state events are not ours any more
	}
	b.mu.Unlock()
	var errs []error
	for _, n := range gone {
		if !started {
			continue
		}
		if err := b.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: n.Address}); err != nil {
			errs = append(errs, fmt.Errorf("divert/bgp: delete neighbor %s: %w", n.Name, err))
		}
	}
	if err := b.replaceExportPolicy(ctx, cur, ns); err != nil {
		// Without the new policy a new neighbor could get every kind.
		return ch, errors.Join(append(errs, err)...)
	}
	b.mu.Lock()
	b.cfg.Neighbors = ns
	for _, n := range fresh {
		b.peers[n.Address] = &peerState{n: n, negotiated: map[gbgp.Family]bool{}}
	}
	b.mu.Unlock()
	for _, n := range fresh {
		if !started {
			continue // Start adds them
		}
		if err := b.s.AddPeer(ctx, &api.AddPeerRequest{Peer: b.peerConfig(n, false)}); err != nil {
			errs = append(errs, fmt.Errorf("divert/bgp: add neighbor %s: %w", n.Name, err))
		}
	}
	b.reevaluate()
	return ch, errors.Join(errs...)
}

// neighborDiff returns the neighbors of cur to delete and of next to add
// (a changed one is in both), by address.
func neighborDiff(cur, next []Neighbor) (gone, fresh []Neighbor, ch NeighborChanges) {
	old := map[string]Neighbor{}
	for _, n := range cur {
		old[n.Address] = n
	}
	for _, n := range next {
		o, ok := old[n.Address]
		switch {
		case !ok:
			fresh = append(fresh, n)
			ch.Added = append(ch.Added, n.Name)
		case !reflect.DeepEqual(o, n):
			gone, fresh = append(gone, o), append(fresh, n)
			ch.Changed = append(ch.Changed, n.Name)
		}
		delete(old, n.Address)
	}
	for _, n := range cur {
		if _, ok := old[n.Address]; ok {
			gone = append(gone, n)
			ch.Removed = append(ch.Removed, n.Name)
		}
	}
	return gone, fresh, ch
}

// exportName is the name of the export policy of a generation.
func exportName(gen int) string {
	if gen == 0 {
		return exportPolicyName
	}
	return fmt.Sprintf("%s-g%d", exportPolicyName, gen)
}

// replaceExportPolicy installs the export policy of next, makes it the
// global export policy in one step, and deletes the one of cur.
func (b *Backend) replaceExportPolicy(ctx context.Context, cur, next []Neighbor) error {
	oldName, newName := exportName(b.exportGen), exportName(b.exportGen+1)
	if err := b.addExportPolicy(ctx, newName, next); err != nil {
		return err
	}
	err := b.s.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies: []*api.Policy{{Name: newName}}, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT}})
	if err != nil {
		return fmt.Errorf("divert/bgp: policy assignment: %w", err)
	}
	b.exportGen++
	// What is left of the old policy is unused: a failure here is only
	// reported.
	var errs []error
	if err := b.s.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: oldName}, All: true}); err != nil {
		errs = append(errs, err)
	}
	for i := range cur {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: fmt.Sprintf("%s-n%d", oldName, i)}
		if err := b.s.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: ds, All: true}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		b.log.Warn("old export policy not fully deleted", "diverter", "bgp", "policy", oldName, "err", err)
	}
	return nil
}

// reevaluate recomputes the status of every mitigation after the
// neighbors changed, and reports the ones that changed.
func (b *Backend) reevaluate() {
	type change struct {
		k divert.Key
		a divert.Applied
	}
	var changes []change
	b.mu.Lock()
	for k, e := range b.entries {
		if e.applied.Status == dots.StatusExceededCapability {
			continue
		}
		if a := b.evaluateLocked(e); a != e.applied {
			e.applied = a
			changes = append(changes, change{k, b.stampLocked(a)})
		}
	}
	b.mu.Unlock()
	if b.updates != nil {
		for _, c := range changes {
			b.updates(b.Name(), c.k, c.a)
		}
	}
}
