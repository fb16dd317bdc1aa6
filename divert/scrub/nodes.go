package scrub

// NodeStatus is one scrubbing node as the backend last saw it.
type NodeStatus struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Up: the node answered and accepted the last state sent to it.
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"` // why it is not up
	// OfferedBPS and OfferedPPS are the traffic to the targets of its
	// mitigations at the last read (bits and packets per second).
	OfferedBPS   uint64 `json:"offered_bps"`
	OfferedPPS   uint64 `json:"offered_pps"`
	CapacityBPS  uint64 `json:"capacity_bps,omitempty"` // 0: no limit
	CapacityPPS  uint64 `json:"capacity_pps,omitempty"`
	OverCapacity bool   `json:"over_capacity"`
}

// Nodes reports each node's state, in configuration order.
func (b *Backend) Nodes() []NodeStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]NodeStatus, 0, len(b.nodes))
	for _, n := range b.nodes {
		ns := NodeStatus{Name: n.cfg.Name, URL: n.cfg.URL, Up: n.err == nil, OfferedBPS: n.load.bps, OfferedPPS: n.load.pps,
			CapacityBPS: n.cfg.CapacityBPS, CapacityPPS: n.cfg.CapacityPPS, OverCapacity: n.load.over}
		if n.err != nil {
			ns.Error = n.err.Error()
		}
		out = append(out, ns)
	}
	return out
}
