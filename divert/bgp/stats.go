package bgp

// RouteStats is what the speaker announces, for monitoring.
type RouteStats struct {
	// ByKind counts the routes in the speaker's RIB by kind (KindRTBH,
	// KindFlowSpec, KindScrubbing); a route shared by mitigations counts once.
	ByKind map[string]int
	// FlowSpec counts the FlowSpec rules in the RIB, which the neighbors'
	// budgets bound.
	FlowSpec int
	// FlowSpecBudget is the FlowSpec budget of each neighbor the export
	// policy sends FlowSpec to, by neighbor name.
	FlowSpecBudget map[string]int
}

// RouteStats counts the routes announced and the FlowSpec budgets.
func (b *Backend) RouteStats() RouteStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := RouteStats{ByKind: map[string]int{}, FlowSpec: b.flowCount, FlowSpecBudget: map[string]int{}}
	for _, r := range b.routes {
		st.ByKind[r.kind]++
	}
	for _, ps := range b.peers {
		if b.getsFlowSpec(ps.n) {
			st.FlowSpecBudget[ps.n.Name] = ps.n.FlowSpecBudget
		}
	}
	return st
}
