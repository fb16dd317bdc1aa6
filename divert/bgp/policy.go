package bgp

import (
	"context"
	"fmt"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// installPolicy builds the global export policy that gives each neighbor
// only the route kinds it receives, adds its communities, and never
// re-advertises what routers send us. Per-neighbor policies are refused by
// GoBGP for non-route-server peers, so neighbor sets match the destination.
func (b *Backend) installPolicy(ctx context.Context) error {
	err := b.s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_COMMUNITY, Name: "dots-blackhole", List: []string{"65535:666"}}})
	if err != nil {
		return fmt.Errorf("divert/bgp: policy: %w", err)
	}
	if err := b.addExportPolicy(ctx, exportPolicyName, b.cfg.Neighbors); err != nil {
		return err
	}
	err = b.s.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies: []*api.Policy{{Name: exportPolicyName}}, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT}})
	if err != nil {
		return fmt.Errorf("divert/bgp: policy assignment: %w", err)
	}
	return nil
}

// exportPolicyName is the export policy of the neighbors of the
// configuration the speaker started with (SetNeighbors installs others).
const exportPolicyName = "dots-export"

// addExportPolicy adds the export policy name for neighbors, and a
// neighbor set name-n<i> for each.
func (b *Backend) addExportPolicy(ctx context.Context, name string, neighbors []Neighbor) error {
	add := func(ds *api.DefinedSet) error {
		return b.s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: ds})
	}
	fam := func(fs ...gbgp.Family) []*api.Family {
		var out []*api.Family
		for _, f := range fs {
			out = append(out, apiutil.ToApiFamily(f.Afi(), f.Safi()))
		}
		return out
	}
	unicast, flow := fam(gbgp.RF_IPv4_UC, gbgp.RF_IPv6_UC), fam(gbgp.RF_FS_IPv4_UC, gbgp.RF_FS_IPv6_UC)
	reject := &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}
	stmts := []*api.Statement{{Name: name + "-only-local", Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_EXTERNAL}, Actions: reject}}
	for i, n := range neighbors {
		set := fmt.Sprintf("%s-n%d", name, i)
		if err := add(&api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: set, List: []string{hostPrefix(n.Address)}}); err != nil {
			return fmt.Errorf("divert/bgp: policy: %w", err)
		}
		ns := &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set}
		if !n.receives(KindRTBH) {
			stmts = append(stmts, &api.Statement{Name: set + "-no-rtbh", Actions: reject, Conditions: &api.Conditions{NeighborSet: ns,
				AfiSafiIn: unicast, CommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "dots-blackhole"}}})
		}
		if !n.receives(KindScrubbing) {
			stmts = append(stmts, &api.Statement{Name: set + "-no-scrubbing", Actions: reject, Conditions: &api.Conditions{NeighborSet: ns,
				AfiSafiIn: unicast, CommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: "dots-blackhole"}}})
		}
		if !b.getsFlowSpec(n) {
			stmts = append(stmts, &api.Statement{Name: set + "-no-flowspec", Actions: reject, Conditions: &api.Conditions{NeighborSet: ns, AfiSafiIn: flow}})
		}
		if len(n.Communities) > 0 {
			stmts = append(stmts, &api.Statement{Name: set + "-communities", Conditions: &api.Conditions{NeighborSet: ns},
				Actions: &api.Actions{Community: &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: n.Communities}}})
		}
	}
	if err := b.s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: name, Statements: stmts}}); err != nil {
		return fmt.Errorf("divert/bgp: policy: %w", err)
	}
	return nil
}

func hostPrefix(addr string) string {
	for _, c := range addr {
		if c == ':' {
			return addr + "/128"
		}
	}
	return addr + "/32"
}
